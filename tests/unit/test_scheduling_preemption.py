"""Preemption order: for demand (checkpointable and least work lost first, minimum runtime
respected, realtime never a victim) and for power (training, then batch, realtime last)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import (
    Preemption,
    PreemptionAction,
    PreemptionReason,
    RunningWorkload,
    WorkloadSpec,
)
from hcp.scheduling.preemption import (
    choose_victims,
    lost_gpu_hours,
    pick_victims,
    shed_for_budget,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
MIN_RUNTIME = timedelta(minutes=10)
REALTIME, BATCH, TRAINING = (
    WorkloadClass.AI_INFERENCE_REALTIME,
    WorkloadClass.AI_INFERENCE_BATCH,
    WorkloadClass.AI_TRAINING,
)


def running(
    wid: str,
    cls: WorkloadClass = TRAINING,
    gpus: int = 1,
    hours: float = 1.0,
    checkpoint_hours_ago: float | None = None,
    interruptible: bool = False,
) -> RunningWorkload:
    """`wid` running on `gpus` GPUs for `hours`, checkpointed that long ago (if given)."""
    checkpointable = checkpoint_hours_ago is not None
    spec = WorkloadSpec(
        wid,
        "c",
        cls,
        None,
        gpus,
        0,
        4.0,
        NOW,
        checkpointable=checkpointable,
        interruptible=interruptible,
    )
    started = NOW - timedelta(hours=hours)
    saved = None if checkpoint_hours_ago is None else NOW - timedelta(hours=checkpoint_hours_ago)
    gpu_ids = tuple(f"{wid}-g{i}" for i in range(gpus))
    return RunningWorkload(spec, gpu_ids, started, saved)


def ids(preemptions: list[Preemption]) -> list[str]:
    return [p.workload_id for p in preemptions]


def test_lost_work_counts_from_the_last_checkpoint() -> None:
    assert lost_gpu_hours(running("a", gpus=4, hours=3), NOW) == pytest.approx(12.0)
    saved = running("b", gpus=4, hours=3, checkpoint_hours_ago=0.5)
    assert lost_gpu_hours(saved, NOW) == pytest.approx(2.0)


def test_checkpointable_victims_go_first_then_least_work_lost() -> None:
    victims = [
        running("fresh-no-checkpoint", hours=0.5),
        running("checkpointed-long-ago", checkpoint_hours_ago=2, hours=3),
        running("checkpointed-just-now", checkpoint_hours_ago=0.1, hours=3),
    ]

    chosen = choose_victims(victims, 3, NOW, MIN_RUNTIME)

    assert ids(chosen) == ["checkpointed-just-now", "checkpointed-long-ago", "fresh-no-checkpoint"]
    assert [p.action for p in chosen] == [
        PreemptionAction.CHECKPOINT,
        PreemptionAction.CHECKPOINT,
        PreemptionAction.REQUEUE,
    ]
    assert all(p.reason is PreemptionReason.REALTIME_DEMAND for p in chosen)


def test_only_as_many_victims_as_needed() -> None:
    victims = [running("cheap", checkpoint_hours_ago=0.1), running("costly", hours=2)]

    assert ids(choose_victims(victims, 1, NOW, MIN_RUNTIME)) == ["cheap"]


def test_a_victim_that_is_not_needed_after_all_is_dropped() -> None:
    # the cheap one-GPU victim is taken first, then the 8-GPU one alone covers the need
    victims = [running("one", checkpoint_hours_ago=0.1), running("eight", gpus=8, hours=1)]

    assert ids(choose_victims(victims, 8, NOW, MIN_RUNTIME)) == ["eight"]


def test_realtime_is_never_a_victim_and_the_minimum_runtime_protects() -> None:
    victims = [
        running("rt", REALTIME, hours=5),
        running("young", BATCH, hours=0.1),
        running("old", BATCH, hours=2),
    ]

    assert ids(choose_victims(victims, 1, NOW, MIN_RUNTIME)) == ["old"]
    assert choose_victims(victims, 2, NOW, MIN_RUNTIME) == []  # not enough: nothing stops


def test_budget_need_can_take_victims_the_workload_cannot_use() -> None:
    usable_one = running("h100", hours=1)
    other_family = running("a100", gpus=4, checkpoint_hours_ago=0.1)

    def usable(r: RunningWorkload) -> int:
        return len(r.gpu_ids) if r.id == "h100" else 0

    chosen = pick_victims([other_family, usable_one], need=1, budget_need=3, usable=usable)

    assert chosen is not None and {r.id for r in chosen} == {"h100", "a100"}
    assert pick_victims([other_family], need=1, budget_need=0, usable=usable) is None


def test_power_sheds_training_then_batch_then_realtime() -> None:
    site = [
        running("rt", REALTIME, gpus=2),
        running("batch", BATCH, gpus=2),
        running("train", TRAINING, gpus=2, checkpoint_hours_ago=0.2),
    ]

    assert ids(shed_for_budget(site, 2, NOW)) == ["train"]
    assert ids(shed_for_budget(site, 3, NOW)) == ["train", "batch"]
    assert ids(shed_for_budget(site, 5, NOW)) == ["train", "batch", "rt"]
    assert ids(shed_for_budget(site, 99, NOW)) == ["train", "batch", "rt"]
    assert shed_for_budget(site, 0, NOW) == []


def test_power_shedding_ignores_the_minimum_runtime_and_pauses_checkpointable_work() -> None:
    site = [running("young", hours=0.01, checkpoint_hours_ago=0.0), running("plain", hours=1)]

    shed = shed_for_budget(site, 2, NOW)

    assert {p.workload_id: p.action for p in shed} == {
        "young": PreemptionAction.PAUSE,
        "plain": PreemptionAction.REQUEUE,
    }
    assert all(p.reason is PreemptionReason.POWER_BUDGET for p in shed)


def test_shedding_inside_a_class_keeps_the_costly_ones_when_a_big_one_covers_the_need() -> None:
    site = [running("small", checkpoint_hours_ago=0.1), running("big", gpus=4, hours=1)]

    assert ids(shed_for_budget(site, 4, NOW)) == ["big"]


def test_a_higher_class_is_shed_only_with_every_lower_one() -> None:
    site = [running("train", gpus=1), running("rt", REALTIME, gpus=8)]

    assert ids(shed_for_budget(site, 8, NOW)) == ["train", "rt"]


def test_the_interruptible_tier_goes_first_within_its_class() -> None:
    """It pays half the list price for being the first paused when power is dear; a class
    still goes before the one above it."""
    site = [
        running("batch-list", BATCH, checkpoint_hours_ago=0.0),
        running("batch-interruptible", BATCH, hours=3, interruptible=True),
        running("train-list", TRAINING, checkpoint_hours_ago=0.0),
    ]
    assert ids(shed_for_budget(site, 1, NOW)) == ["train-list"]
    assert ids(shed_for_budget(site, 2, NOW)) == ["train-list", "batch-interruptible"]
    demand = choose_victims(site[:2], 1, NOW, MIN_RUNTIME)
    assert ids(demand) == ["batch-interruptible"]
