"""Preemption: which running workloads stop, in which order, and the work each one loses.

For demand (a higher class that does not fit), victims come from the classes the policy lets it
preempt, never younger than the minimum runtime, cheapest first: checkpointable, then least work
lost, then the lowest class. To cut power, training goes first, then batch, realtime last; the
minimum runtime does not protect against a power limit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta

from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import (
    DEFAULT_PREEMPTS,
    Preemption,
    PreemptionAction,
    PreemptionReason,
    RunningWorkload,
)

REALTIME_VICTIM_CLASSES = DEFAULT_PREEMPTS[WorkloadClass.AI_INFERENCE_REALTIME]

GpuCount = Callable[[RunningWorkload], int]


def held_gpus(running: RunningWorkload) -> int:
    """GPUs a running workload holds (all of them count)."""
    return len(running.gpu_ids)


def lost_gpu_hours(running: RunningWorkload, now: datetime) -> float:
    """GPU-hours of work lost if `running` stops at `now`: since its last checkpoint when it has
    one, else since it started."""
    since = running.started_at
    if running.spec.checkpointable and running.checkpointed_at is not None:
        since = max(since, running.checkpointed_at)
    hours = max(0.0, (now - since).total_seconds()) / 3600.0
    return len(running.gpu_ids) * hours


def preempt(
    running: RunningWorkload,
    reason: PreemptionReason,
    now: datetime,
    *,
    for_workload_id: str | None = None,
    final: bool = False,
) -> Preemption:
    """The record of stopping `running`; `final` when it must not run again (retries spent)."""
    return Preemption(
        workload_id=running.id,
        reason=reason,
        action=_action(running, reason, final),
        lost_gpu_hours=lost_gpu_hours(running, now),
        gpu_ids=running.gpu_ids,
        for_workload_id=for_workload_id,
    )


def _action(running: RunningWorkload, reason: PreemptionReason, final: bool) -> PreemptionAction:
    if final:
        return PreemptionAction.FAIL
    if not running.spec.checkpointable:
        return PreemptionAction.REQUEUE
    if reason is PreemptionReason.POWER_BUDGET:
        return PreemptionAction.PAUSE
    return PreemptionAction.CHECKPOINT


def victim_order(
    running: Iterable[RunningWorkload],
    now: datetime,
    min_runtime: timedelta,
    classes: frozenset[WorkloadClass] = REALTIME_VICTIM_CLASSES,
) -> list[RunningWorkload]:
    """The workloads of `classes` that demand may stop (run at least `min_runtime`), cheapest
    first: the interruptible tier, checkpointable, least work lost, lowest class, then id."""
    eligible = [
        r for r in running if r.spec.workload_class in classes and now - r.started_at >= min_runtime
    ]
    return sorted(eligible, key=lambda r: _demand_cost(r, now))


def _demand_cost(running: RunningWorkload, now: datetime) -> tuple[bool, bool, float, int, str]:
    spec = running.spec
    return (
        not spec.interruptible,  # the interruptible tier is paid for the risk
        not spec.checkpointable,
        lost_gpu_hours(running, now),
        -spec.workload_class.priority,
        running.id,
    )


def pick_victims(
    ordered: Collection[RunningWorkload],
    need: int,
    budget_need: int = 0,
    usable: GpuCount = held_gpus,
) -> list[RunningWorkload] | None:
    """The cheapest of `ordered` (cheapest first) that together free `need` GPUs the waiting
    workload can use and `budget_need` GPUs of site budget; None when all of them fall short.

    Usable victims are taken first (they serve both needs), then any for the budget still
    missing; then every victim that is not needed after all is dropped, costliest first.
    The scan stops as soon as both needs are met.
    """
    first = _take_until(enumerate(ordered), usable, need)
    if first is None:
        return None
    taken = {i for i, _ in first}
    budget_left = budget_need - sum(held_gpus(r) for _, r in first)
    rest = ((i, r) for i, r in enumerate(ordered) if i not in taken)
    more = _take_until(rest, held_gpus, budget_left)
    if more is None:
        return None
    both = [r for _, r in sorted(first + more, key=lambda pair: pair[0])]
    return _drop_unneeded(both, need, budget_need, usable)


def choose_victims(
    running: Iterable[RunningWorkload],
    need: int,
    now: datetime,
    min_runtime: timedelta,
    *,
    budget_need: int = 0,
    usable: GpuCount = held_gpus,
    for_workload_id: str | None = None,
) -> list[Preemption]:
    """Batch and training workloads to stop so a realtime workload gets `need` usable GPUs
    (and `budget_need` GPUs of budget); empty when that cannot be done (then nothing stops)."""
    ordered = victim_order(running, now, min_runtime)
    chosen = pick_victims(ordered, need, budget_need, usable) or []
    reason = PreemptionReason.REALTIME_DEMAND
    return [preempt(r, reason, now, for_workload_id=for_workload_id) for r in chosen]


def shed_for_budget(
    running: Iterable[RunningWorkload], gpus_to_free: int, now: datetime
) -> list[Preemption]:
    """Workloads to stop so that `gpus_to_free` GPUs at one site go idle: training, then batch,
    realtime last; in a class checkpointable and least work lost first. A higher class is
    stopped only when every lower one is stopped too; all of them when even that falls short."""
    ordered = sorted(running, key=lambda r: _shed_cost(r, now))
    taken = _take_until(enumerate(ordered), held_gpus, gpus_to_free)
    chosen = ordered if taken is None else [r for _, r in taken]
    if taken:
        top = chosen[-1].spec.workload_class
        same_class = [r for r in chosen if r.spec.workload_class is top]
        kept = _drop_unneeded(same_class, 0, gpus_to_free - _sum_held(chosen, top), held_gpus)
        chosen = [r for r in chosen if r.spec.workload_class is not top] + kept
    return [preempt(r, PreemptionReason.POWER_BUDGET, now) for r in chosen]


def _shed_cost(running: RunningWorkload, now: datetime) -> tuple[int, bool, bool, float, str]:
    spec = running.spec
    return (
        -spec.workload_class.priority,
        not spec.interruptible,  # within a class: the interruptible tier first
        not spec.checkpointable,
        lost_gpu_hours(running, now),
        running.id,
    )


def _sum_held(chosen: Iterable[RunningWorkload], but_class: WorkloadClass) -> int:
    return sum(held_gpus(r) for r in chosen if r.spec.workload_class is not but_class)


def _take_until(
    ordered: Iterable[tuple[int, RunningWorkload]], amount: GpuCount, need: int
) -> list[tuple[int, RunningWorkload]] | None:
    """The first (position, workload) pairs with a positive `amount` until they add up to
    `need`; None when all of them fall short."""
    chosen: list[tuple[int, RunningWorkload]] = []
    for i, running in ordered:
        if need <= 0:
            break
        got = amount(running)
        if got > 0:
            chosen.append((i, running))
            need -= got
    return chosen if need <= 0 else None


def _drop_unneeded(
    chosen: list[RunningWorkload], need: int, budget_need: int, usable: GpuCount
) -> list[RunningWorkload]:
    """`chosen` (cheapest first) without the victims the needs are met without, costliest first."""
    kept = list(chosen)
    spare = sum(map(usable, kept)) - need
    spare_budget = sum(map(held_gpus, kept)) - budget_need
    for running in reversed(chosen):
        if usable(running) <= spare and held_gpus(running) <= spare_budget:
            kept.remove(running)
            spare -= usable(running)
            spare_budget -= held_gpus(running)
    return kept
