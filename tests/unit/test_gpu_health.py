"""A GPU's health: its node agent's word decides; DCGM's last Xid stands in only without it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hcp.domain.gpu_telemetry import APPLICATION_XIDS, GpuHealth, GpuReading
from hcp.domain.status import (
    UNREACHABLE,
    AgentVerdict,
    gpu_problems,
    gpu_status,
    standing_verdict,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HEALTHY, UNHEALTHY, LOST = GpuHealth.HEALTHY, GpuHealth.UNHEALTHY, GpuHealth.LOST


@pytest.mark.parametrize(
    ("last_xid", "agent", "problems"),
    [
        # The agent was not asked, or did not answer: DCGM's last Xid decides.
        (0, None, ()),
        (13, None, ()),  # a user's program raised it: the GPU is fine
        (48, None, ("XID 48",)),
        (79, None, ("XID 79",)),
        # The agent calls the GPU healthy: a last Xid from before a reset is history.
        (0, HEALTHY, ()),
        (13, HEALTHY, ()),
        (48, HEALTHY, ()),
        (79, HEALTHY, ()),
        # The agent calls it unhealthy or lost: so it is, with a fault Xid named beside.
        (0, UNHEALTHY, ("node agent: unhealthy",)),
        (13, UNHEALTHY, ("node agent: unhealthy",)),
        (48, UNHEALTHY, ("XID 48", "node agent: unhealthy")),
        (0, LOST, ("node agent: lost",)),
        (79, LOST, ("XID 79", "node agent: lost")),
    ],
)
def test_the_agent_decides_and_dcgm_stands_in(
    last_xid: int, agent: GpuHealth | None, problems: tuple[str, ...]
) -> None:
    assert gpu_problems(last_xid, agent) == problems


@pytest.mark.parametrize("last_xid", [0, *sorted(APPLICATION_XIDS), 48, 79, 94])
@pytest.mark.parametrize("agent", [None, *GpuHealth])
def test_only_a_gpu_the_agent_calls_healthy_or_dcgm_finds_no_fault_in_is_usable(
    last_xid: int, agent: GpuHealth | None
) -> None:
    usable = not gpu_problems(last_xid, agent)
    fault_xid = last_xid not in APPLICATION_XIDS | {0}
    assert usable is (agent is HEALTHY or (agent is None and not fault_xid))


def reading(xid: int) -> GpuReading:
    return GpuReading("node-1", 0, "GPU-0", "H100", NOW, 0.0, 70.0, 40.0, 0, 81_000, xid)


def test_a_status_is_healthy_as_its_problems_say() -> None:
    reset = gpu_status("g0", reading(79), NOW, agent=HEALTHY)
    assert (reset.state, reset.healthy, reset.problems) == ("idle", True, ())
    faulted = gpu_status("g0", reading(48), NOW, agent=UNHEALTHY)
    assert (faulted.healthy, faulted.problems) == (False, ("XID 48", "node agent: unhealthy"))
    assert not gpu_status("g0", reading(79), NOW).healthy  # no word from the agent


def test_a_gpu_missing_from_dcgm_is_unreachable_whatever_the_agent_says() -> None:
    """No reading, no power or temperature to show: the agent's word does not make it usable."""
    for agent in (None, *GpuHealth):
        status = gpu_status("g0", None, NOW, "unreachable: fell off the bus", agent)
        assert (status.state, status.healthy) == (UNREACHABLE, False)
        assert status.problems == ("unreachable: fell off the bus",)


def test_a_missed_agent_answer_leaves_its_last_word_standing_until_a_new_xid() -> None:
    reset = standing_verdict(HEALTHY, None, 79)  # healthy again; DCGM still shows Xid 79
    assert reset == AgentVerdict(HEALTHY, 79)
    assert standing_verdict(None, reset, 79) == reset  # the agent missed a poll
    assert standing_verdict(None, reset, 48) is None  # a new Xid since: DCGM's rule again
    assert standing_verdict(UNHEALTHY, reset, 79) == AgentVerdict(UNHEALTHY, 79)
    assert standing_verdict(None, None, 0) is None
