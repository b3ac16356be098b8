"""The fleet readers turn read errors into unreachable statuses that say why, and log each
device's trouble once when it starts and once when it ends, never on every poll."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hcp.adapters.clock import ManualClock
from hcp.adapters.devices import fleet_readers, luxos
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmSweep, DcgmTarget
from hcp.adapters.devices.errors import DeviceError, DeviceUnreachable
from hcp.adapters.devices.fleet_readers import (
    DcgmFleetReader,
    GpuHealthReader,
    LuxosFleetReader,
    Transitions,
    condition,
)
from hcp.adapters.devices.luxos import LuxosClient
from hcp.domain.catalog import asic_model
from hcp.domain.gpu_telemetry import GpuHealth, GpuReading
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.simulators.asic.config import MinerSimConfig
from hcp.simulators.asic.miner import MinerSim
from hcp.simulators.asic.rpc import answer

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NODE_DOWN = "unreachable: node node-1: cannot connect: refused"
LOGGER = fleet_readers.__name__


def status(device_id: str, state: str = "mining", problems: tuple[str, ...] = ()) -> DeviceStatus:
    return DeviceStatus(device_id, state, not problems, NOW, problems=problems)


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return lines


@pytest.mark.parametrize(
    ("state", "problems", "expected"),
    [
        ("mining", (), "ok"),
        ("sleeping", (), "ok"),
        ("mining", ("board 2 dead",), "degraded"),
        (MinerState.FAULT.value, ("board 1 dead", "board 2 dead", "board 3 dead"), "faulted"),
        (UNREACHABLE, ("unreachable: cannot connect",), "unreachable"),
        ("busy", ("XID 48",), "degraded"),
    ],
)
def test_conditions(state: str, problems: tuple[str, ...], expected: str) -> None:
    assert condition(status("d", state, problems)) == expected


def test_each_transition_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    transitions = Transitions("miner")
    transitions.note([status("m1"), status("m2")])
    assert logged(caplog) == []  # healthy from the start: nothing happened
    lost = status("m1", UNREACHABLE, ("unreachable: cannot connect (refused)",))
    transitions.note([lost, status("m2")])
    transitions.note([lost, status("m2")])
    assert logged(caplog) == [
        ("WARNING", "miner m1 is unreachable (was ok): unreachable: cannot connect (refused)")
    ]
    hot = status("m1", problems=("overheating: 97 °C >= 90 °C",))
    hotter = status("m1", problems=("overheating: 98 °C >= 90 °C",))
    transitions.note([hot, status("m2")])
    transitions.note([hotter, status("m2")])  # still degraded: not logged again
    assert logged(caplog) == [
        ("WARNING", "miner m1 is degraded (was unreachable): overheating: 97 °C >= 90 °C")
    ]
    transitions.note([status("m1"), status("m2")])
    transitions.note([status("m1"), status("m2")])
    assert logged(caplog) == [("INFO", "miner m1 recovered (was degraded)")]


def test_a_device_first_seen_in_trouble_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    Transitions("GPU").note([status("g1", "busy", ("XID 48",))])
    assert logged(caplog) == [("WARNING", "GPU g1 is degraded (was ok): XID 48")]


def test_a_sweep_names_a_few_devices_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    transitions = Transitions("miner", per_sweep=2)
    down = [status(f"m{i}", UNREACHABLE, ("unreachable: no reply within 2 s",)) for i in range(5)]
    transitions.note(down)
    lines = logged(caplog)
    assert len(lines) == 3 and all(level == "WARNING" for level, _ in lines)
    assert lines[2][1] == "3 more miners turned unreachable, faulted or degraded in this sweep"
    transitions.note([status(f"m{i}") for i in range(5)])
    assert logged(caplog)[-1] == ("INFO", "3 more miners recovered in this sweep")


def reading(problems: tuple[str, ...] = ()) -> AsicReading:
    return AsicReading(
        "10.0.0.1:4028", NOW, MinerState.MINING, 200.0, 3500.0, 70.0, None, 0, 0, problems
    )


async def test_the_luxos_reader_says_why_a_miner_is_unreachable_and_logs_it_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    polls: list[list[AsicReading | DeviceError]] = [
        [reading(), DeviceUnreachable("10.0.0.2:4028", "cannot connect (refused)")],
        [reading(), DeviceUnreachable("10.0.0.2:4028", "cannot connect (refused)")],
        [reading(("board 2 dead",)), reading()],
    ]

    async def read_all(clients: Sequence[LuxosClient]) -> list[AsicReading | DeviceError]:
        assert len(clients) == 2
        return polls.pop(0)

    monkeypatch.setattr(fleet_readers, "read_all", read_all)
    addresses = {"m1": ("10.0.0.1", 4028), "m2": ("10.0.0.2", 4028)}
    reader = LuxosFleetReader(addresses, ManualClock(NOW))
    first = await reader.read()
    assert first[1] == DeviceStatus(
        "m2", UNREACHABLE, False, NOW, problems=("unreachable: cannot connect (refused)",)
    )
    await reader.read()
    assert logged(caplog) == [
        ("WARNING", "miner m2 is unreachable (was ok): unreachable: cannot connect (refused)")
    ]
    third = await reader.read()
    assert [s.problems for s in third] == [("board 2 dead",), ()]
    assert logged(caplog) == [
        ("WARNING", "miner m1 is degraded (was ok): board 2 dead"),
        ("INFO", "miner m2 recovered (was unreachable)"),
    ]


class SimulatedMiners:
    """A transport that answers as simulated S21s do, except: the miner on port 1 puts NaN
    (valid on the wire, as decoded) in its share count, and the one on port 2 makes the read
    raise what no device error covers."""

    def __init__(self) -> None:
        self.sims = {p: MinerSim(MinerSimConfig(asic_model("S21"), seed=p), NOW) for p in range(4)}

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        if port == 2:
            raise RuntimeError("a bug met on this miner")
        reply = answer(self.sims[port], request, NOW)
        raw = json.dumps(reply)
        if port == 1:
            raw = re.sub(r'"Accepted": \d+', '"Accepted": NaN', raw, count=1)
        return raw.encode() + b"\x00"


async def test_a_miner_whose_reply_breaks_its_read_is_unreachable_and_the_rest_are_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, luxos.__name__)
    addresses = {f"m{p}": ("127.0.0.1", p) for p in range(4)}
    reader = LuxosFleetReader(addresses, ManualClock(NOW), transport=SimulatedMiners())
    statuses = await reader.read()
    assert [s.state for s in statuses] == ["mining", UNREACHABLE, UNREACHABLE, "mining"]
    assert "'Accepted' is not a finite number" in statuses[1].problems[0]
    assert statuses[2].problems == (
        "unreachable: reading failed: RuntimeError: a bug met on this miner",
    )
    [record] = [r for r in caplog.records if r.name == luxos.__name__]
    assert "1 miner(s)" in record.getMessage() and record.exc_info is not None


@dataclass
class ScriptedScraper:
    sweeps: list[DcgmSweep] = field(default_factory=list)

    async def scrape_all(self, targets: Iterable[DcgmTarget]) -> DcgmSweep:
        return self.sweeps.pop(0)

    async def aclose(self) -> None:
        pass


@dataclass
class SilentAgents:
    """No node agent answers: health rests on DCGM alone."""

    async def read(self, hosts: Sequence[str]) -> dict[str, dict[int, GpuHealth]]:
        return {}

    async def aclose(self) -> None:
        pass


def gpu(index: int, xid: int = 0) -> GpuReading:
    return GpuReading("node-1", index, f"GPU-{index}", "H100", NOW, 0.0, 80.0, 40.0, 0, 80_000, xid)


async def test_the_dcgm_reader_says_why_a_gpu_is_unreachable_and_logs_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    down = DeviceUnreachable("node-1", "cannot connect: refused")
    scraper = ScriptedScraper(
        [
            DcgmSweep((gpu(0, xid=48),), {}),  # GPU 1 missing from its node's metrics
            DcgmSweep((), {"node-1": down}),
            DcgmSweep((), {"node-1": down}),
            DcgmSweep((gpu(0), gpu(1)), {}),
        ]
    )
    gpus = {("node-1", 0): "g0", ("node-1", 1): "g1"}
    reader = DcgmFleetReader(
        gpus,
        lambda host: f"http://{host}",
        ManualClock(NOW),
        scraper=_as_scraper(scraper),
        agents=_as_agents(SilentAgents()),
    )
    first = await reader.read()
    assert [s.problems for s in first] == [("XID 48",), ("unreachable: fell off the bus",)]
    second = await reader.read()
    assert [s.problems for s in second] == [(NODE_DOWN,), (NODE_DOWN,)]
    await reader.read()
    await reader.read()
    assert logged(caplog) == [
        ("WARNING", "GPU g0 is degraded (was ok): XID 48"),
        ("WARNING", "GPU g1 is unreachable (was ok): unreachable: fell off the bus"),
        ("WARNING", f"GPU g0 is unreachable (was degraded): {NODE_DOWN}"),
        ("INFO", "GPU g0 recovered (was unreachable)"),
        ("INFO", "GPU g1 recovered (was unreachable)"),
    ]


def agent_answers(health: list[dict[int, str] | None]) -> httpx.AsyncClient:
    """A client whose node agent lists its GPUs with each poll's `health` by index in turn
    (None: it is down)."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/nodes/node-1/v1/gpus"
        poll = health.pop(0)
        if poll is None:
            return httpx.Response(503, json={"detail": "node is down", "code": "node_down"})
        gpus = [agent_gpu(index, value) for index, value in poll.items()]
        return httpx.Response(200, json={"hostname": "node-1", "model": "H100", "gpus": gpus})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def agent_gpu(index: int, health: str) -> dict[str, object]:
    lost = health == GpuHealth.LOST
    return {
        "index": index,
        "uuid": f"GPU-{index}",
        "health": health,
        "workload_id": None,
        **dict.fromkeys(("util_pct", "power_w", "temp_c"), None if lost else 0.0),
        **dict.fromkeys(("fb_used_mib", "fb_free_mib"), None if lost else 0),
        "last_xid": 79,
        "xid_count": 1,
    }


async def test_the_node_agent_decides_a_gpus_health_and_dcgm_stands_in_when_it_is_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    scraper = ScriptedScraper([DcgmSweep((gpu(0, xid=79), gpu(1), gpu(2, xid=13)), {})] * 4)
    agents = agent_answers(
        [
            {0: "unhealthy", 1: "healthy", 2: "lost"},  # DCGM reads a GPU the agent calls lost
            {0: "healthy", 1: "healthy", 2: "healthy"},  # GPU 0 reset; Xid 79 still its last
            None,
            {0: "healthy", 1: "healthy"},  # the agent does not list GPU 2
        ]
    )
    gpus = {("node-1", 0): "g0", ("node-1", 1): "g1", ("node-1", 2): "g2"}
    url = "http://sim/nodes/{}".format
    reader = DcgmFleetReader(
        gpus,
        url,
        ManualClock(NOW),
        _as_scraper(scraper),
        GpuHealthReader(url, agents),
        agent_refresh_s=0,  # asked every poll
    )
    polls = [[(s.healthy, s.problems) for s in await reader.read()] for _ in range(4)]
    await agents.aclose()

    assert polls[0] == [
        (False, ("XID 79", "node agent: unhealthy")),
        (True, ()),
        (False, ("node agent: lost",)),
    ]
    assert polls[1] == [(True, ()), (True, ()), (True, ())]
    # The agent is silent: its last word stands while DCGM shows the Xid it showed then.
    assert polls[2] == [(True, ()), (True, ()), (True, ())]
    assert polls[3] == [(True, ()), (True, ()), (True, ())]
    (silent, back) = [line for line in logged(caplog) if line[1].startswith("node agents")]
    assert silent[0] == "WARNING" and silent[1].startswith("node agents did not answer (node-1:")
    assert silent[1].endswith(
        "): their GPUs keep the agents' last word until DCGM reports a new Xid"
    )
    assert back == ("INFO", "node agents answer again: node-1")


def _as_scraper(scraper: ScriptedScraper) -> DcgmScraper:
    return scraper  # type: ignore[return-value]


def _as_agents(agents: SilentAgents) -> GpuHealthReader:
    return agents  # type: ignore[return-value]


async def test_an_agent_whose_gpus_are_healthy_is_asked_again_only_at_its_refresh() -> None:
    """A node whose agent called every GPU healthy is not asked while DCGM shows the same Xids
    and its answer is younger than the refresh; a new Xid, a word other than healthy, or the
    refresh's end has it asked at the next poll."""
    asked: list[int] = []
    poll = 0
    script = iter(
        [{0: "healthy", 1: "healthy"}, {0: "unhealthy", 1: "healthy"}, {0: "healthy", 1: "healthy"}]
        + [{0: "healthy", 1: "healthy"}] * 3
    )

    def answer(request: httpx.Request) -> httpx.Response:
        health = next(script)
        asked.append(poll)  # the poll under way
        gpus = [agent_gpu(index, value) for index, value in health.items()]
        return httpx.Response(200, json={"hostname": "node-1", "model": "H100", "gpus": gpus})

    sweeps = [DcgmSweep((gpu(0, xid=x), gpu(1)), {}) for x in (0, 0, 48, 48, 48, 48, 48)]
    clock = ManualClock(NOW)
    url = "http://sim/nodes/{}".format
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    reader = DcgmFleetReader(
        {("node-1", 0): "g0", ("node-1", 1): "g1"},
        url,
        clock,
        _as_scraper(ScriptedScraper(sweeps)),
        GpuHealthReader(url, client),
        agent_refresh_s=30,
    )
    healthy = []
    for seconds in (0, 5, 5, 5, 5, 30, 5):
        clock.advance(timedelta(seconds=seconds))
        healthy.append([s.healthy for s in await reader.read()])
        poll += 1
    await client.aclose()
    # 0: first; 2: a new Xid (48); 3: the agent's word was "unhealthy"; 5: 30 s since 3
    assert asked == [0, 2, 3, 5]
    assert healthy == [[True, True], [True, True], [False, True]] + [[True, True]] * 4


async def scripted_polls(
    polls: list[tuple[float, DcgmSweep, dict[int, str] | None]],
) -> tuple[list[int], list[list[tuple[bool, tuple[str, ...]]]]]:
    """Poll a one-GPU node as scripted: (seconds since the last poll, the DCGM sweep, what its
    agent answers if asked: health by index, or None for a 503). Returns the polls at which the
    agent was asked, and each poll's (healthy, problems)."""
    asked: list[int] = []
    answers: dict[int, dict[int, str] | None] = {}
    poll = 0

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(poll)
        health = answers[poll]
        if health is None:
            return httpx.Response(503, json={"detail": "node is down", "code": "node_down"})
        gpus = [agent_gpu(index, value) for index, value in health.items()]
        return httpx.Response(200, json={"hostname": "node-1", "model": "H100", "gpus": gpus})

    clock = ManualClock(NOW)
    url = "http://sim/nodes/{}".format
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    scraper = ScriptedScraper([sweep for _, sweep, _ in polls])
    reader = DcgmFleetReader(
        {("node-1", 0): "g0"}, url, clock, _as_scraper(scraper), GpuHealthReader(url, client)
    )
    seen = []
    for poll, (seconds, _, health) in enumerate(polls):
        answers[poll] = health
        clock.advance(timedelta(seconds=seconds))
        seen.append([(s.healthy, s.problems) for s in await reader.read()])
    await client.aclose()
    return asked, seen


def sweep_of(xid: int) -> DcgmSweep:
    return DcgmSweep((gpu(0, xid=xid),), {})


OK, HOT = (True, ()), (False, ("XID 48",))


async def test_a_word_voided_by_a_new_xid_does_not_come_back_with_the_old_one() -> None:
    asked, seen = await scripted_polls(
        [(0, sweep_of(94), {0: "healthy"}), (5, sweep_of(48), None), (5, sweep_of(94), None)]
    )
    assert asked == [0, 1, 2]
    assert seen == [[OK], [HOT], [(False, ("XID 94",))]]  # DCGM's rule: the word is gone


async def test_an_agent_is_asked_again_when_the_clock_goes_back() -> None:
    asked, _ = await scripted_polls(
        [(0, sweep_of(0), {0: "healthy"}), (-3_600, sweep_of(0), {0: "healthy"})]
    )
    assert asked == [0, 1]


async def test_a_word_given_while_the_scrape_failed_is_asked_for_again() -> None:
    down = DcgmSweep((), {"node-1": DeviceUnreachable("node-1", "timed out")})
    asked, seen = await scripted_polls(
        [
            (0, sweep_of(0), {0: "healthy"}),
            (30, down, {0: "unhealthy"}),  # no reading to keep the word beside
            (5, sweep_of(0), {0: "unhealthy"}),
        ]
    )
    assert asked == [0, 1, 2]
    assert seen[2] == [(False, ("node agent: unhealthy",))]


async def test_a_gpu_its_agent_no_longer_lists_falls_back_to_dcgms_rule() -> None:
    asked, seen = await scripted_polls(
        [(0, sweep_of(48), {0: "healthy"}), (30, sweep_of(48), {}), (5, sweep_of(48), {})]
    )
    assert asked == [0, 1, 2]
    assert seen == [[OK], [HOT], [HOT]]
