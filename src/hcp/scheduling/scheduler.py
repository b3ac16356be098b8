"""One scheduling tick, pure: failures, then the power budget, then the queue in dispatch order
with preemption for higher classes. The caller applies the decision and owns every clock.

A cordoned GPU is healthy but takes no new work: its workload drains (it is no failure, and
demand or the budget may still stop it), and stopping that workload frees budget, not room.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from hcp.domain.errors import Conflict
from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import (
    Gpu,
    Placement,
    Preemption,
    PreemptionReason,
    RunningWorkload,
    SchedulingDecision,
    SchedulingPolicy,
    WorkloadSpec,
)
from hcp.scheduling.placement import FreeGpus, PoolKey, place
from hcp.scheduling.preemption import (
    lost_gpu_hours,
    pick_victims,
    preempt,
    shed_for_budget,
    victim_order,
)
from hcp.scheduling.queue import DispatchOrder, WorkloadQueue, held_by_customer

DEFAULT_POLICY = SchedulingPolicy()
_ALL_CLASSES = frozenset(WorkloadClass)

Victims = dict[str, RunningWorkload]
"""Workloads that demand may stop, by id, cheapest first."""

_DEMAND_REASON = {
    WorkloadClass.AI_INFERENCE_REALTIME: PreemptionReason.REALTIME_DEMAND,
    WorkloadClass.AI_INFERENCE_BATCH: PreemptionReason.BATCH_DEMAND,
}


def schedule(
    queue: WorkloadQueue,
    gpus: Sequence[Gpu],
    running: Sequence[RunningWorkload],
    budgets: Mapping[str, int],
    now: datetime,
    policy: SchedulingPolicy = DEFAULT_POLICY,
) -> SchedulingDecision:
    """Decide one tick.

    `budgets` is how many GPUs the plan lets be busy per site (a site it omits gets none);
    the plan has already taken what it could from the ASICs. Workloads on failed GPUs are
    requeued (or failed past `policy.max_retries`); sites over budget shed work; then queued
    workloads are placed in dispatch order, a higher class preempting lower ones when it does
    not fit. Nothing stopped in this tick is placed in it, a queued workload that is also
    running is skipped, and no GPU is ever given twice. Conflict when `running` itself books
    a GPU twice.
    """
    check_running(running)
    tick = _Tick(gpus, budgets, now, policy)
    tick.held_at_start = {r.id for r in running}
    survivors = tick.shed_over_budget(tick.requeue_failed(running))
    tick.start(survivors)
    tick.dispatch(queue)
    return tick.decision()


def check_running(running: Sequence[RunningWorkload]) -> None:
    """Conflict when the running set books one GPU twice or lists one workload twice."""
    seen_gpus: set[str] = set()
    seen_ids: set[str] = set()
    for r in running:
        if r.id in seen_ids or seen_gpus.intersection(r.gpu_ids):
            raise Conflict(f"running workload {r.id} is listed twice or shares a GPU")
        seen_ids.add(r.id)
        seen_gpus.update(r.gpu_ids)


def failure_reason(
    running: RunningWorkload, gpus: Mapping[str, Gpu], dead_nodes: frozenset[str]
) -> PreemptionReason | None:
    """NODE_FAILURE when one of its GPUs is gone or on a node with no healthy GPU left,
    GPU_FAILURE when one is unhealthy, None when all are fine (cordoned or not)."""
    held = [gpus.get(gpu_id) for gpu_id in running.gpu_ids]
    if any(g is None or g.node in dead_nodes for g in held):
        return PreemptionReason.NODE_FAILURE
    if any(g is not None and not g.healthy for g in held):
        return PreemptionReason.GPU_FAILURE
    return None


def dead_nodes(gpus: Iterable[Gpu]) -> frozenset[str]:
    """Nodes none of whose GPUs is healthy (a node whose GPUs are all cordoned is drained, not
    dead)."""
    alive = {g.node for g in gpus if g.healthy}
    return frozenset(g.node for g in gpus if g.node not in alive)


class _Tick:
    """The working state of one tick: free GPUs, budget headroom, who holds what, the outcome."""

    def __init__(
        self,
        gpus: Sequence[Gpu],
        budgets: Mapping[str, int],
        now: datetime,
        policy: SchedulingPolicy,
    ) -> None:
        self.gpus = {g.id: g for g in gpus}
        self.budgets = budgets
        self.now = now
        self.policy = policy
        self.running: dict[str, RunningWorkload] = {}
        self.held_at_start: set[str] = set()
        self.site_of: dict[str, str] = {}
        self.free = FreeGpus(())
        self.headroom: dict[str, int] = {}
        self.placements: list[Placement] = []
        self.preemptions: list[Preemption] = []
        self.requeues: list[WorkloadSpec] = []
        self.failed: list[str] = []
        self.blocked: set[PoolKey] = set()
        self.no_place: dict[tuple[str | None, float], int] = {}
        self.no_preempt: dict[tuple[WorkloadClass, str | None, float], int] = {}
        self.victims_at: dict[str, list[RunningWorkload]] = {}
        self.victims_for: dict[tuple[str, frozenset[WorkloadClass]], Victims] = {}
        self.pools_held: dict[str, Counter[PoolKey | None]] = {}
        self.stoppable = dict.fromkeys(WorkloadClass, 0)

    def requeue_failed(self, running: Sequence[RunningWorkload]) -> list[RunningWorkload]:
        """Stop the workloads on failed GPUs; the ones left running."""
        dead = dead_nodes(self.gpus.values())
        survivors = []
        for r in running:
            reason = failure_reason(r, self.gpus, dead)
            if reason is None:
                survivors.append(r)
            else:
                self._stop_failed(r, reason)
        return survivors

    def _stop_failed(self, running: RunningWorkload, reason: PreemptionReason) -> None:
        final = running.spec.retries >= self.policy.max_retries
        self.preemptions.append(preempt(running, reason, self.now, final=final))
        if final:
            self.failed.append(running.id)
        else:
            self.requeues.append(replace(running.spec, retries=running.spec.retries + 1))

    def shed_over_budget(self, survivors: list[RunningWorkload]) -> list[RunningWorkload]:
        """Stop work at every site busier than its budget; the ones left running."""
        by_site: dict[str, list[RunningWorkload]] = {}
        for r in survivors:
            by_site.setdefault(self._site(r), []).append(r)
        stopped: set[str] = set()
        for site, group in by_site.items():
            excess = sum(len(r.gpu_ids) for r in group) - self.budgets.get(site, 0)
            for p in shed_for_budget(group, excess, self.now):
                self.preemptions.append(p)
                stopped.add(p.workload_id)
        self.requeues.extend(r.spec for r in survivors if r.id in stopped)
        return [r for r in survivors if r.id not in stopped]

    def start(self, survivors: list[RunningWorkload]) -> None:
        """Index what runs and what is free once failures and shedding are done."""
        self.running = {r.id: r for r in survivors}
        self.site_of = {r.id: self._site(r) for r in survivors}
        busy = [gpu_id for r in survivors for gpu_id in r.gpu_ids]
        self.free = FreeGpus(self.gpus.values(), busy)
        # a site whose GPUs are all cordoned is absent from the index but may still run work
        sites = self.free.sites().union(self.site_of.values())
        self.headroom = {site: self.budgets.get(site, 0) for site in sites}
        for r in survivors:
            self.headroom[self.site_of[r.id]] -= len(r.gpu_ids)
        for r in victim_order(survivors, self.now, self.policy.min_runtime, _ALL_CLASSES):
            self.victims_at.setdefault(self.site_of[r.id], []).append(r)
            self.stoppable[r.spec.workload_class] += 1
            self.pools_held[r.id] = Counter(map(self.free.pool_of, r.gpu_ids))

    def _site(self, running: RunningWorkload) -> str:
        return self.gpus[running.gpu_ids[0]].site

    def dispatch(self, queue: WorkloadQueue) -> None:
        """Offer every queued workload in dispatch order; place it, or preempt for it."""
        order = DispatchOrder(queue, held_by_customer(self.running.values()), self.now, self.policy)
        while (spec := order.pop()) is not None:
            placed = self._decide(spec, order)
            order.done(spec, placed)
            if not placed and not self._can_progress(spec.workload_class):
                order.skip_class()

    def _decide(self, spec: WorkloadSpec, order: DispatchOrder) -> bool:
        if spec.id in self.held_at_start or not order.fits_quota(spec):
            return False
        placement = self._place(spec) or self._preempt_for(spec, order)
        if placement is None:
            self._reserve_if_starving(spec)
            return False
        self.free.take(placement.gpu_ids)
        self.headroom[placement.site] -= spec.gpu_count
        self.placements.append(placement)
        return True

    def _place(self, spec: WorkloadSpec) -> Placement | None:
        want = (spec.gpu_family, spec.memory_gb_per_gpu)
        if spec.gpu_count >= self.no_place.get(want, spec.gpu_count + 1):
            return None
        pools = [p for p in self.free.matching(spec) if p not in self.blocked]
        placement = place(spec, self.free, self.headroom, pools)
        if placement is None:
            self.no_place[want] = min(spec.gpu_count, self.no_place.get(want, spec.gpu_count))
        return placement

    def _preempt_for(self, spec: WorkloadSpec, order: DispatchOrder) -> Placement | None:
        """Stop the cheapest victims that make room for `spec` in one pool, then place it there.
        A failed attempt is remembered: within a tick, room for a class only shrinks."""
        want = (spec.workload_class, spec.gpu_family, spec.memory_gb_per_gpu)
        if not self.policy.preempts.get(spec.workload_class):
            return None
        if spec.gpu_count >= self.no_preempt.get(want, spec.gpu_count + 1):
            return None
        best = self._cheapest_room(spec)
        if best is None:
            self.no_preempt[want] = min(spec.gpu_count, self.no_preempt.get(want, spec.gpu_count))
            return None
        pool, victims = best
        for victim in victims:
            self._stop_for(victim, spec, order)
        return place(spec, self.free, self.headroom, [pool])

    def _cheapest_room(self, spec: WorkloadSpec) -> tuple[PoolKey, list[RunningWorkload]] | None:
        best: tuple[float, int, PoolKey, list[RunningWorkload]] | None = None
        for pool in self.free.matching(spec):
            victims = self._victims_in(pool, spec)
            if victims is None:
                continue
            cost = sum(lost_gpu_hours(r, self.now) for r in victims)
            if best is None or (cost, len(victims)) < best[:2]:
                best = (cost, len(victims), pool, victims)
        return None if best is None else (best[2], best[3])

    def _victims_in(self, pool: PoolKey, spec: WorkloadSpec) -> list[RunningWorkload] | None:
        site, count = pool[0], spec.gpu_count
        if self.free.capacity(pool) < count or self.budgets.get(site, 0) < count:
            return None
        classes = self.policy.preempts.get(spec.workload_class, frozenset())

        def usable(r: RunningWorkload) -> int:
            return self.pools_held[r.id][pool]

        need = count - self.free.free_in(pool)
        budget_need = count - self.headroom.get(site, 0)
        return pick_victims(self._victims(site, classes).values(), need, budget_need, usable)

    def _victims(self, site: str, classes: frozenset[WorkloadClass]) -> Victims:
        """Running workloads of `classes` at `site` that demand may stop, cheapest first."""
        key = (site, classes)
        if key not in self.victims_for:
            self.victims_for[key] = {
                r.id: r
                for r in self.victims_at.get(site, ())
                if r.spec.workload_class in classes and r.id in self.running
            }
        return self.victims_for[key]

    def _stop_for(self, victim: RunningWorkload, spec: WorkloadSpec, order: DispatchOrder) -> None:
        reason = _DEMAND_REASON[spec.workload_class]
        self.preemptions.append(preempt(victim, reason, self.now, for_workload_id=spec.id))
        self.requeues.append(victim.spec)
        del self.running[victim.id]
        for (site, _), victims in self.victims_for.items():
            if site == self.site_of[victim.id]:
                victims.pop(victim.id, None)
        self.stoppable[victim.spec.workload_class] -= 1
        self.free.release(victim.gpu_ids)
        self.headroom[self.site_of[victim.id]] += len(victim.gpu_ids)
        order.charge(victim.spec.customer_id, -len(victim.gpu_ids))
        self.no_place.clear()

    def _reserve_if_starving(self, spec: WorkloadSpec) -> None:
        """Keep later workloads off the free GPUs of the pools a long-waiting workload could
        ever fit in, so that running work drains there instead of small newcomers taking each
        freed GPU. A class that may preempt still enters them through `_preempt_for`: a higher
        class never waits while a lower one runs where it fits."""
        if self.now - spec.submitted_at < self.policy.starvation_wait:
            return
        for pool in self.free.matching(spec):
            fits = self.free.capacity(pool) >= spec.gpu_count
            if fits and self.budgets.get(pool[0], 0) >= spec.gpu_count:
                self.blocked.add(pool)

    def _can_progress(self, workload_class: WorkloadClass) -> bool:
        """Whether anything of this class might still be placed this tick: a free GPU with
        budget left somewhere, or a running workload it may preempt."""
        if any(h > 0 and self.free.free_at(site) for site, h in self.headroom.items()):
            return True
        classes = self.policy.preempts.get(workload_class, frozenset())
        return any(self.stoppable[c] for c in classes)

    def decision(self) -> SchedulingDecision:
        return SchedulingDecision(
            placements=tuple(self.placements),
            preemptions=tuple(self.preemptions),
            requeues=tuple(self.requeues),
            failed=tuple(self.failed),
        )
