"""The runs billing reads from a workload's history: each stretch it held GPUs, on the GPUs
its start recorded and billed at their family."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hcp.domain.workloads import (
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)
from hcp.services.billing import DEFAULT_FAMILY, family_of, runs_of

T = datetime(2026, 3, 1, 10, tzinfo=UTC)
RUNNING, QUEUED, COMPLETED = WorkloadState.RUNNING, WorkloadState.QUEUED, WorkloadState.COMPLETED
# A site hosting two families, and one hosting only A100s.
GPU_MODELS = {"h1": "H100 SXM", "h2": "H100 SXM", "a1": "A100 SXM", "a2": "A100 SXM"}
MIXED = {"mixed": frozenset({"H100", "A100"}), "a100s": frozenset({"A100"})}


def workload(
    gpu_type: str | None = "H100",
    state: WorkloadState = RUNNING,
    gpu_ids: tuple[str, ...] = ("g1", "g2"),
    site: str = "mixed",
) -> Workload:
    requirements = Requirements(gpu_type, 2, None, 1.0)
    return Workload(
        "w1", "c1", WorkloadClass.AI_INFERENCE_BATCH, state, requirements, T, T,
        gpu_ids=gpu_ids, site_id=site,
    )  # fmt: skip


def change(minutes: float, event: WorkloadEvent, gpu_ids: tuple[str, ...] = ()) -> StateChange:
    to = RUNNING if event is WorkloadEvent.START else QUEUED
    return StateChange("w1", T + timedelta(minutes=minutes), event, None, to, gpu_ids=gpu_ids)


def test_each_start_to_its_end_is_a_run_and_an_open_one_has_no_end() -> None:
    history = [change(0, WorkloadEvent.START), change(30, WorkloadEvent.PREEMPT)]
    history.append(change(40, WorkloadEvent.START))
    runs = runs_of(workload(), history, GPU_MODELS)
    assert [(r.started_at, r.stopped_at) for r in runs] == [
        (T, T + timedelta(minutes=30)),
        (T + timedelta(minutes=40), None),
    ]


def test_a_run_that_ends_before_it_starts_is_not_billed(caplog: pytest.LogCaptureFixture) -> None:
    """Platform time went back (a restart after a sped-up run): the stretch cannot be billed,
    and the workload's other runs and everyone else's still are."""
    history = [change(120, WorkloadEvent.START), change(5, WorkloadEvent.PREEMPT)]
    history += [change(10, WorkloadEvent.START), change(20, WorkloadEvent.COMPLETE)]
    runs = runs_of(workload(), history, GPU_MODELS)
    assert [(r.started_at, r.stopped_at) for r in runs] == [
        (T + timedelta(minutes=10), T + timedelta(minutes=20))
    ]
    assert "ends before it starts; not billed" in caplog.text


def test_a_finished_run_on_a100s_of_a_mixed_site_is_billed_as_a100(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It released its GPUs as it finished: billing took the family its site hosts, and a
    site with H100s and A100s has no one family, so the run was billed as an H100 run."""
    done = workload(gpu_type=None, state=COMPLETED, gpu_ids=())
    history = [change(0, WorkloadEvent.START, ("a1", "a2")), change(30, WorkloadEvent.COMPLETE)]
    [run] = runs_of(done, history, GPU_MODELS, MIXED)
    assert (run.gpu_family, run.gpu_ids) == ("A100", ("a1", "a2"))
    assert caplog.text == ""


def test_a_workload_preempted_off_a100s_and_resumed_on_h100s_bills_each_run_at_its_own() -> None:
    moved = workload(gpu_type=None, gpu_ids=("h1", "h2"))
    history = [change(0, WorkloadEvent.START, ("a1", "a2")), change(30, WorkloadEvent.PREEMPT)]
    history += [change(31, WorkloadEvent.REQUEUE), change(40, WorkloadEvent.START, ("h1", "h2"))]
    runs = runs_of(moved, history, GPU_MODELS, MIXED)
    assert [(r.gpu_family, r.gpu_ids) for r in runs] == [
        ("A100", ("a1", "a2")),
        ("H100", ("h1", "h2")),
    ]


def test_the_family_asked_for_comes_first() -> None:
    asked = workload(gpu_type="L40S", state=COMPLETED, gpu_ids=())
    history = [change(0, WorkloadEvent.START, ("a1", "a2")), change(30, WorkloadEvent.COMPLETE)]
    assert [r.gpu_family for r in runs_of(asked, history, GPU_MODELS, MIXED)] == ["L40S"]


@pytest.mark.parametrize(
    ("site", "family"), [("a100s", "A100"), ("mixed", DEFAULT_FAMILY), ("unknown", "H100")]
)
def test_gpus_the_fleet_no_longer_knows_are_billed_at_the_site_family_with_a_warning(
    site: str, family: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its devices deleted: its site's one family, else the default, and a warning says so."""
    gone = workload(gpu_type=None, state=COMPLETED, gpu_ids=(), site=site)
    history = [change(0, WorkloadEvent.START, ("x1", "x2")), change(30, WorkloadEvent.COMPLETE)]
    [run] = runs_of(gone, history, GPU_MODELS, MIXED)
    assert (run.gpu_family, run.gpu_ids) == (family, ("x1", "x2"))
    assert f"fleet knows no GPU of its run started {T.isoformat()} (x1, x2)" in caplog.text
    assert f"billed at {family}" in caplog.text


def test_a_start_stored_without_its_gpus_is_billed_on_stand_ins_at_the_site_family(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run started before starts recorded their GPUs: as many stand-ins as it asked for."""
    old = workload(gpu_type=None, state=COMPLETED, gpu_ids=(), site="a100s")
    history = [change(0, WorkloadEvent.START), change(30, WorkloadEvent.COMPLETE)]
    [run] = runs_of(old, history, GPU_MODELS, MIXED)
    assert (run.gpu_family, run.gpu_ids) == ("A100", ("w1/0", "w1/1"))
    assert "its GPUs were not recorded" in caplog.text


def test_runs_ended_by_since_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """Metering an interval needs no run ended by its start (nor warnings about them)."""
    w = workload(gpu_type=None, gpu_ids=("h1", "h2"))
    history = [change(0, WorkloadEvent.START), change(30, WorkloadEvent.PREEMPT)]
    history += [change(40, WorkloadEvent.START, ("h1", "h2"))]
    runs = runs_of(w, history, GPU_MODELS, MIXED, since=T + timedelta(minutes=30))
    assert [(r.started_at, r.gpu_family) for r in runs] == [(T + timedelta(minutes=40), "H100")]
    assert caplog.text == ""


def test_family_of_a_single_family_site_needs_no_gpus() -> None:
    w = workload(gpu_type=None, state=COMPLETED, gpu_ids=(), site="a100s")
    assert family_of(w, (), GPU_MODELS, MIXED) == "A100"
    assert family_of(w, ("h1",), GPU_MODELS, MIXED) == "H100"
