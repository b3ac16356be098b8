"""Scheduler benchmark: `python -m hcp.scheduling.bench` prints one JSON object.

A seeded fleet of 10,000 GPUs (4 sites, 8 GPUs a node, H100 and A100) and 100,000 queued
workloads from 1,000 customers. It measures

- placement latency: one decision (next workload from the dispatch order, placement, index
  update), timed for every decision while the fleet fills from empty and then stays full;
- tick latency and sustained throughput: whole `schedule()` ticks in which a share of the
  running workloads finish and new ones arrive so the queue stays at 100,000;
- a naive baseline in the same run: each decision sorts the whole queue and scans the GPU list.

This module measures time; it is a tool at the edge, not part of the pure core.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import Gpu, RunningWorkload, SchedulingDecision, WorkloadSpec
from hcp.scheduling.placement import FreeGpus, place
from hcp.scheduling.queue import DispatchOrder, WorkloadQueue, fair_share_rank
from hcp.scheduling.scheduler import DEFAULT_POLICY, schedule

SEED = 20250501
START = datetime(2025, 5, 1, tzinfo=UTC)
TICK = timedelta(minutes=5)
SITES = ("site-a", "site-b", "site-c", "site-d")
GPUS_PER_NODE = 8
CLASS_MIX = (
    (WorkloadClass.AI_INFERENCE_REALTIME, 0.02),
    (WorkloadClass.AI_INFERENCE_BATCH, 0.28),
    (WorkloadClass.AI_TRAINING, 0.70),
)
_T = TypeVar("_T")
GANG_SIZES = ((1, 0.55), (2, 0.15), (4, 0.15), (8, 0.12), (16, 0.03))


def build_fleet(rng: random.Random, gpu_count: int) -> list[Gpu]:
    """`gpu_count` GPUs on 8-GPU nodes spread over the sites; about 1 in 200 unhealthy."""
    gpus = []
    for n in range(gpu_count // GPUS_PER_NODE):
        site = SITES[n % len(SITES)]
        family, memory = ("A100", 40.0) if n % 3 == 0 else ("H100", 80.0)
        for i in range(GPUS_PER_NODE):
            healthy = rng.random() > 0.005
            gpus.append(Gpu(f"{site}-n{n}-g{i}", f"{site}-n{n}", site, family, memory, healthy))
    return gpus


def random_spec(rng: random.Random, number: int, now: datetime, customers: int) -> WorkloadSpec:
    """One seeded workload submitted within the last two days."""
    cls = _weighted(rng, CLASS_MIX)
    return WorkloadSpec(
        id=f"w{number}",
        customer_id=f"c{int(rng.paretovariate(1.2)) % customers}",
        workload_class=cls,
        gpu_family=rng.choice(("H100", "A100", None)),
        gpu_count=_weighted(rng, GANG_SIZES),
        memory_gb_per_gpu=rng.choice((16.0, 40.0, 80.0)),
        estimated_hours=rng.uniform(0.1, 8.0),
        submitted_at=now - timedelta(seconds=rng.uniform(0, 2 * 86400)),
        checkpointable=cls is WorkloadClass.AI_TRAINING and rng.random() < 0.7,
    )


def _weighted(rng: random.Random, table: Sequence[tuple[_T, float]]) -> _T:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def measure_placement(
    gpus: Sequence[Gpu], queue: WorkloadQueue, budgets: dict[str, int], decisions: int
) -> tuple[list[float], list[float]]:
    """Milliseconds per decision for the first `decisions` offered workloads, fleet from
    empty: every decision, and those that placed a workload."""
    free, headroom = FreeGpus(gpus), dict(budgets)
    order = DispatchOrder(queue, {}, START, DEFAULT_POLICY)
    latencies, placed = [], []
    for _ in range(decisions):
        t0 = time.perf_counter_ns()
        spec = order.pop()
        if spec is None:
            break
        placement = place(spec, free, headroom)
        if placement is not None:
            free.take(placement.gpu_ids)
            headroom[placement.site] -= spec.gpu_count
        order.done(spec, placement is not None)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        if placement is not None:
            placed.append(latencies[-1])
    return latencies, placed


def seed_running(
    rng: random.Random, gpus: Sequence[Gpu], budgets: dict[str, int], customers: int
) -> dict[str, RunningWorkload]:
    """Workloads already running when the benchmark starts (up to the budgets), started and
    checkpointed within the last ten hours, so that the ticks also preempt."""
    free, headroom = FreeGpus(gpus), dict(budgets)
    running: dict[str, RunningWorkload] = {}
    for number in range(sum(budgets.values())):
        spec = random_spec(rng, -1 - number, START, customers)
        placement = place(spec, free, headroom)
        if placement is None:
            continue
        free.take(placement.gpu_ids)
        headroom[placement.site] -= spec.gpu_count
        started = START - timedelta(hours=rng.uniform(0, 10))
        checkpointed = started + (START - started) * rng.random()
        running[spec.id] = RunningWorkload(spec, placement.gpu_ids, started, checkpointed)
    return running


def run_ticks(
    rng: random.Random,
    gpus: Sequence[Gpu],
    queue: WorkloadQueue,
    running: dict[str, RunningWorkload],
    budgets: dict[str, int],
    ticks: int,
) -> tuple[list[float], int, float]:
    """Tick latencies (ms), workloads placed and seconds spent over `ticks` ticks. Every
    fourth tick the plan cuts each site's budget by a third (a price spike)."""
    now, number, depth = START, len(queue), len(queue)
    customers = len({s.customer_id for s in queue})
    tick_ms, placed, seconds = [], 0, 0.0
    for tick in range(ticks):
        plan = budgets if tick % 4 != 3 else {s: b * 2 // 3 for s, b in budgets.items()}
        t0 = time.perf_counter()
        decision = schedule(queue, gpus, list(running.values()), plan, now)
        _apply(decision, queue, running, now)
        elapsed = time.perf_counter() - t0
        tick_ms.append(elapsed * 1000)
        placed, seconds = placed + len(decision.placements), seconds + elapsed
        now += TICK
        _finish_some(rng, running, 0.1)
        while len(queue) < depth:
            number += 1
            queue.add(random_spec(rng, number, now, customers))
    return tick_ms, placed, seconds


def _apply(
    decision: SchedulingDecision,
    queue: WorkloadQueue,
    running: dict[str, RunningWorkload],
    now: datetime,
) -> None:
    for p in decision.preemptions:
        del running[p.workload_id]
    for spec in decision.requeues:
        queue.add(spec)
    for placement in decision.placements:
        spec = queue.remove(placement.workload_id)
        running[spec.id] = RunningWorkload(spec, placement.gpu_ids, now)


def _finish_some(rng: random.Random, running: dict[str, RunningWorkload], share: float) -> None:
    for workload_id in [w for w in running if rng.random() < share]:
        del running[workload_id]


def naive_decisions(
    gpus: Sequence[Gpu], queue: WorkloadQueue, budgets: dict[str, int], decisions: int
) -> list[float]:
    """The baseline: per decision, sort the whole queue by (class, rank) and scan the GPU list
    for the first node with room. Milliseconds per decision."""
    busy: set[str] = set()
    usage: dict[str, int] = {}
    headroom, done = dict(budgets), set[str]()
    latencies = []
    for _ in range(decisions):
        t0 = time.perf_counter_ns()
        for spec in sorted((s for s in queue if s.id not in done), key=lambda s: _key(s, usage)):
            gpu_ids = _first_fit(spec, gpus, busy, headroom)
            if gpu_ids:
                busy.update(gpu_ids)
                headroom[_site_of(gpus, gpu_ids[0])] -= spec.gpu_count
                usage[spec.customer_id] = usage.get(spec.customer_id, 0) + spec.gpu_count
                done.add(spec.id)
                break
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    return latencies


def _key(spec: WorkloadSpec, usage: dict[str, int]) -> tuple[int, float, datetime]:
    held = usage.get(spec.customer_id, 0)
    ts = spec.queued_since_ts
    rank = fair_share_rank(held, spec.customer_id, ts, START.timestamp(), DEFAULT_POLICY)
    return spec.workload_class.priority, rank, spec.submitted_at


def _first_fit(
    spec: WorkloadSpec, gpus: Sequence[Gpu], busy: set[str], headroom: dict[str, int]
) -> list[str]:
    by_node: dict[str, list[str]] = {}
    for g in gpus:
        suits = g.memory_gb >= spec.memory_gb_per_gpu and spec.gpu_family in (None, g.family)
        if suits and g.healthy and g.id not in busy and headroom[g.site] >= spec.gpu_count:
            by_node.setdefault(g.node, []).append(g.id)
            if len(by_node[g.node]) == spec.gpu_count:
                return by_node[g.node]
    return []


def _site_of(gpus: Sequence[Gpu], gpu_id: str) -> str:
    return next(g.site for g in gpus if g.id == gpu_id)


def _percentile(values: Sequence[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def run(gpu_count: int, queued: int, customers: int, ticks: int) -> dict[str, object]:
    """Every figure of the benchmark as one JSON-ready dict."""
    rng = random.Random(SEED)
    gpus = build_fleet(rng, gpu_count)
    specs = [random_spec(rng, i, START, customers) for i in range(queued)]
    budgets = {site: int(gpu_count / len(SITES) * 0.9) for site in SITES}
    latencies, placing = measure_placement(gpus, WorkloadQueue(specs), budgets, 20_000)
    naive = naive_decisions(gpus, WorkloadQueue(specs), budgets, 20)
    running = seed_running(rng, gpus, budgets, customers)
    tick_ms, placed, seconds = run_ticks(rng, gpus, WorkloadQueue(specs), running, budgets, ticks)
    p99, naive_p99 = _percentile(latencies, 99), _percentile(naive, 99)
    return {
        "gpus": len(gpus),
        "queued": queued,
        "customers": customers,
        "seed": SEED,
        "placement_decisions": len(latencies),
        "placement_p50_ms": round(statistics.median(latencies), 4),
        "placement_p99_ms": round(p99, 4),
        "placing_decisions": len(placing),
        "placing_p50_ms": round(statistics.median(placing), 4),
        "placing_p99_ms": round(_percentile(placing, 99), 4),
        "throughput_workloads_per_s": round(placed / seconds, 1),
        "ticks": ticks,
        "tick_p50_ms": round(statistics.median(tick_ms), 1),
        "tick_max_ms": round(max(tick_ms), 1),
        "placed_in_ticks": placed,
        "naive_decisions": len(naive),
        "naive_p50_ms": round(statistics.median(naive), 2),
        "naive_p99_ms": round(naive_p99, 2),
        "naive_throughput_workloads_per_s": round(len(naive) / (sum(naive) / 1000), 1),
        "p99_speedup_vs_naive": round(naive_p99 / p99, 1),
        "throughput_vs_naive": round(placed / seconds / (len(naive) / (sum(naive) / 1000)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=10_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(run(args.gpus, args.queued, args.customers, args.ticks)))


if __name__ == "__main__":
    main()
