"""Invariants of one scheduling tick, over random fleets, running sets, queues and budgets:
no GPU is double-booked, no workload runs twice, budgets hold, cordoned GPUs get no new work
and their work is stopped for no failure, and a higher class never waits while a lower class
runs on GPUs it could use (unless the minimum runtime protects it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import (
    Gpu,
    PreemptionAction,
    PreemptionReason,
    RunningWorkload,
    SchedulingDecision,
    SchedulingPolicy,
    WorkloadSpec,
)
from hcp.scheduling.queue import WorkloadQueue
from hcp.scheduling.scheduler import schedule

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
SITES = ("s1", "s2")
KINDS = (("H100", 80.0), ("A100", 40.0), ("A100", 80.0))
DEMAND = (PreemptionReason.REALTIME_DEMAND, PreemptionReason.BATCH_DEMAND)
FAILURE = (PreemptionReason.GPU_FAILURE, PreemptionReason.NODE_FAILURE)


@dataclass(frozen=True)
class World:
    gpus: list[Gpu]
    running: list[RunningWorkload]
    queued: list[WorkloadSpec]
    budgets: dict[str, int]
    policy: SchedulingPolicy


def spec_strategy(wid: str) -> st.SearchStrategy[WorkloadSpec]:
    return st.builds(
        WorkloadSpec,
        id=st.just(wid),
        customer_id=st.sampled_from(["a", "b", "c"]),
        workload_class=st.sampled_from(list(WorkloadClass)),
        gpu_family=st.sampled_from([None, "H100", "A100"]),
        gpu_count=st.integers(1, 6),
        memory_gb_per_gpu=st.sampled_from([0.0, 40.0, 80.0]),
        estimated_hours=st.just(1.0),
        submitted_at=st.integers(0, 600).map(lambda m: NOW - timedelta(minutes=m)),
        checkpointable=st.booleans(),
        retries=st.integers(0, 3),
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    gpus: list[Gpu] = []
    running: list[RunningWorkload] = []
    for n in range(draw(st.integers(1, 5))):
        site, (family, memory) = draw(st.sampled_from(SITES)), draw(st.sampled_from(KINDS))
        size, whole_node_cordoned = draw(st.integers(1, 4)), draw(st.integers(0, 3)) == 0
        node = [
            Gpu(
                f"n{n}g{i}",
                f"n{n}",
                site,
                family,
                memory,
                healthy=draw(st.integers(0, 9)) > 0,
                cordoned=whole_node_cordoned or draw(st.integers(0, 5)) == 0,
            )
            for i in range(size)
        ]
        gpus += node
        running += draw(running_on(node, f"r{n}-"))
    queued = [draw(spec_strategy(f"q{i}")) for i in range(draw(st.integers(0, 12)))]
    budgets = {s: draw(st.integers(0, 12)) for s in SITES}
    policy = SchedulingPolicy(
        min_runtime=draw(st.sampled_from([timedelta(0), timedelta(minutes=30)])),
        starvation_wait=draw(st.sampled_from([timedelta(minutes=60), timedelta(days=9)])),
        aging_share_per_hour=draw(st.sampled_from([0.0, 1.0])),
        max_retries=2,
    )
    return World(gpus, running, queued, budgets, policy)


@st.composite
def running_on(draw: st.DrawFn, node: list[Gpu], prefix: str) -> list[RunningWorkload]:
    """Workloads running on consecutive GPUs of `node` (healthy or not, cordoned or not)."""
    out: list[RunningWorkload] = []
    i = 0
    while i < len(node) and draw(st.booleans()):
        count = draw(st.integers(1, len(node) - i))
        base = draw(spec_strategy(f"{prefix}{i}"))
        fitted = replace(base, gpu_family=None, gpu_count=count, memory_gb_per_gpu=0.0)
        started = NOW - timedelta(minutes=draw(st.integers(0, 120)))
        held = tuple(g.id for g in node[i : i + count])
        out.append(RunningWorkload(fitted, held, started))
        i += count
    return out


def after(world: World, decision: SchedulingDecision) -> list[RunningWorkload]:
    """What runs once the decision is applied (placements start now)."""
    stopped = {p.workload_id for p in decision.preemptions}
    specs = {s.id: s for s in world.queued}
    started = [RunningWorkload(specs[p.workload_id], p.gpu_ids, NOW) for p in decision.placements]
    return [r for r in world.running if r.id not in stopped] + started


@settings(max_examples=120, deadline=None)
@given(worlds())
def test_no_gpu_is_double_booked_and_no_workload_runs_twice(world: World) -> None:
    decision = schedule(
        WorkloadQueue(world.queued), world.gpus, world.running, world.budgets, NOW, world.policy
    )
    by_id = {g.id: g for g in world.gpus}
    now_running = after(world, decision)

    held = [gpu_id for r in now_running for gpu_id in r.gpu_ids]
    assert len(held) == len(set(held))
    ids = [r.id for r in now_running]
    assert len(ids) == len(set(ids))
    was_running = {r.id for r in world.running}
    assert not was_running.intersection(p.workload_id for p in decision.placements)
    for p in decision.placements:
        assert all(by_id[g].healthy and by_id[g].site == p.site for g in p.gpu_ids)


@settings(max_examples=120, deadline=None)
@given(worlds())
def test_budgets_hold_and_every_stop_is_accounted_for(world: World) -> None:
    decision = schedule(
        WorkloadQueue(world.queued), world.gpus, world.running, world.budgets, NOW, world.policy
    )
    site = {g.id: g.site for g in world.gpus}

    busy = Counter(site[g] for r in after(world, decision) for g in r.gpu_ids)
    assert all(busy[s] <= world.budgets.get(s, 0) for s in busy)
    stops = [p.workload_id for p in decision.preemptions]
    assert len(stops) == len(set(stops))
    requeued = [s.id for s in decision.requeues]
    final = [p.workload_id for p in decision.preemptions if p.action is PreemptionAction.FAIL]
    assert sorted(requeued + final) == sorted(stops)
    assert list(decision.failed) == final


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_cordoned_gpus_get_no_new_work_and_their_work_stops_for_no_failure(world: World) -> None:
    decision = schedule(
        WorkloadQueue(world.queued), world.gpus, world.running, world.budgets, NOW, world.policy
    )
    by_id = {g.id: g for g in world.gpus}
    alive = {g.node for g in world.gpus if g.healthy}

    for p in decision.placements:
        assert not any(by_id[g].cordoned for g in p.gpu_ids), p
    takers = {p.for_workload_id for p in decision.preemptions if p.reason in DEMAND}
    assert takers <= {p.workload_id for p in decision.placements}  # no victim stopped in vain
    failed = {p.workload_id for p in decision.preemptions if p.reason in FAILURE}
    for r in world.running:
        broken = any(not by_id[g].healthy or by_id[g].node not in alive for g in r.gpu_ids)
        assert (r.id in failed) == broken, r


@settings(max_examples=120, deadline=None)
@given(worlds())
def test_demand_preempts_only_lower_classes_past_their_minimum_runtime(world: World) -> None:
    decision = schedule(
        WorkloadQueue(world.queued), world.gpus, world.running, world.budgets, NOW, world.policy
    )
    running = {r.id: r for r in world.running}
    specs = {s.id: s for s in world.queued}

    for p in decision.preemptions:
        if p.reason in DEMAND:
            victim, taker = running[p.workload_id], specs[p.for_workload_id or ""]
            assert victim.spec.workload_class.priority > taker.workload_class.priority
            assert NOW - victim.started_at >= world.policy.min_runtime


@settings(max_examples=250, deadline=None)
@given(worlds())
def test_a_higher_class_never_waits_while_a_lower_class_runs_where_it_fits(world: World) -> None:
    decision = schedule(
        WorkloadQueue(world.queued), world.gpus, world.running, world.budgets, NOW, world.policy
    )
    now_running = after(world, decision)
    placed = {p.workload_id for p in decision.placements}
    was_running = {r.id for r in world.running}

    for spec in world.queued:
        if spec.id not in placed and spec.id not in was_running:
            assert not fits_by_preempting(spec, world, now_running), spec


def fits_by_preempting(spec: WorkloadSpec, world: World, running: list[RunningWorkload]) -> bool:
    """Whether `spec` would fit one pool if every lower class it may preempt (and that the
    minimum runtime does not protect) stopped: free + such GPUs in the pool (cordoned ones
    never count), and budget headroom + such GPUs at the site, both reach its GPU count."""
    classes = world.policy.preempts.get(spec.workload_class, frozenset())
    if not classes:
        return False
    by_id = {g.id: g for g in world.gpus}
    held = {g for r in running for g in r.gpu_ids}
    stoppable = [
        r
        for r in running
        if r.spec.workload_class in classes and NOW - r.started_at >= world.policy.min_runtime
    ]
    for site, family, memory in {(g.site, g.family, g.memory_gb) for g in world.gpus}:
        if (spec.gpu_family not in (None, family)) or memory < spec.memory_gb_per_gpu:
            continue
        pool = [g for g in world.gpus if (g.site, g.family, g.memory_gb) == (site, family, memory)]
        usable = {g.id for g in pool if g.schedulable}
        free = sum(1 for g in usable if g not in held)
        in_pool = sum(1 for r in stoppable for g in r.gpu_ids if g in usable)
        at_site = sum(len(r.gpu_ids) for r in stoppable if by_id[r.gpu_ids[0]].site == site)
        busy = sum(1 for g in held if by_id[g].site == site)
        headroom = world.budgets.get(site, 0) - busy
        if min(free + in_pool, headroom + at_site) >= spec.gpu_count:
            return True
    return False
