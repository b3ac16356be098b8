"""The workload queue and its dispatch order: class first, then weighted fair share across
customers with an aging credit, first-come first-served within one customer (a close deadline
counts as an early arrival: `WorkloadSpec.queued_since_ts`).

A customer's rank is `held GPUs / weight - aging_share_per_hour * hours waited`; lower goes first.
With one resource (GPUs) the dominant share of DRF is the GPU share. Aging works inside a class
only: a lower class never passes a higher one.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from hcp.domain.errors import Conflict, NotFound
from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import RunningWorkload, SchedulingPolicy, WorkloadSpec

CLASSES_BY_PRIORITY: tuple[WorkloadClass, ...] = tuple(
    sorted(WorkloadClass, key=lambda c: c.priority)
)

Lane = list[tuple[float, str]]
"""One customer's queued workloads of one class: (queued since, as POSIX seconds, id), sorted:
first come first served, a close deadline counting as an early arrival
(`WorkloadSpec.queued_since_ts`)."""


class WorkloadQueue:
    """Queued workloads indexed by class and customer; add and remove cost O(log n + lane)."""

    def __init__(self, specs: Sequence[WorkloadSpec] = ()) -> None:
        self._specs: dict[str, WorkloadSpec] = {}
        self._lanes: dict[WorkloadClass, dict[str, Lane]] = {c: {} for c in WorkloadClass}
        for spec in specs:
            self.add(spec)

    def add(self, spec: WorkloadSpec) -> None:
        """Queue `spec`; Conflict when a workload with its id is already queued."""
        if spec.id in self._specs:
            raise Conflict(f"workload {spec.id} is already queued")
        self._specs[spec.id] = spec
        lane = self._lanes[spec.workload_class].setdefault(spec.customer_id, [])
        insort(lane, (spec.queued_since_ts, spec.id))

    def remove(self, workload_id: str) -> WorkloadSpec:
        """Take a workload out of the queue (placed, cancelled); NotFound when it is not queued."""
        spec = self._specs.pop(workload_id, None)
        if spec is None:
            raise NotFound("queued workload", workload_id)
        lanes = self._lanes[spec.workload_class]
        lane = lanes[spec.customer_id]
        del lane[bisect_left(lane, (spec.queued_since_ts, spec.id))]
        if not lane:
            del lanes[spec.customer_id]
        return spec

    def get(self, workload_id: str) -> WorkloadSpec:
        try:
            return self._specs[workload_id]
        except KeyError:
            raise NotFound("queued workload", workload_id) from None

    def __contains__(self, workload_id: object) -> bool:
        return workload_id in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[WorkloadSpec]:
        return iter(self._specs.values())

    def lanes(self, workload_class: WorkloadClass) -> Mapping[str, Sequence[tuple[float, str]]]:
        """The class's lanes by customer id (read-only view of the index)."""
        return self._lanes[workload_class]

    def depth_by_class(self) -> dict[WorkloadClass, int]:
        """Number of queued workloads per class."""
        return {c: sum(map(len, lanes.values())) for c, lanes in self._lanes.items()}


def held_by_customer(running: Iterable[RunningWorkload]) -> dict[str, int]:
    """GPUs each customer holds now: the usage that fair share and quotas are measured by."""
    held: dict[str, int] = {}
    for r in running:
        held[r.spec.customer_id] = held.get(r.spec.customer_id, 0) + len(r.gpu_ids)
    return held


def fair_share_rank(
    held_gpus: int, customer_id: str, submitted_ts: float, now_ts: float, policy: SchedulingPolicy
) -> float:
    """A workload's place inside its class (lower first): the customer's weighted GPU share
    minus the aging credit earned while waiting (both in GPUs per unit of weight)."""
    waited_hours = max(0.0, now_ts - submitted_ts) / 3600.0
    share = held_gpus / policy.weight(customer_id)
    return share - policy.aging_share_per_hour * waited_hours


def queue_position(
    queue: WorkloadQueue,
    workload_id: str,
    usage: Mapping[str, int],
    now: datetime,
    policy: SchedulingPolicy,
) -> int:
    """1-based place of a queued workload in the dispatch order as it stands at `now` with the
    customers' current GPU `usage` (placements made later reorder it). Costs O(customers log n)."""
    spec = queue.get(workload_id)
    now_ts = now.timestamp()
    key = _lane_key(spec.customer_id, (spec.queued_since_ts, spec.id), usage, now_ts, policy)
    ahead = sum(_depth(queue, c) for c in CLASSES_BY_PRIORITY[: spec.workload_class.priority - 1])
    for customer, lane in queue.lanes(spec.workload_class).items():
        ahead += _ahead_in_lane(customer, lane, key, usage, now_ts, policy)
    return ahead + 1


def _ahead_in_lane(
    customer: str,
    lane: Sequence[tuple[float, str]],
    key: tuple[float, float, str],
    usage: Mapping[str, int],
    now_ts: float,
    policy: SchedulingPolicy,
) -> int:
    """How many of a lane come before `key` (a lane's keys never decrease along it)."""

    def lane_key(item: tuple[float, str]) -> tuple[float, float, str]:
        return _lane_key(customer, item, usage, now_ts, policy)

    return bisect_left(lane, key, key=lane_key)


def _rank(
    customer: str, ts: float, usage: Mapping[str, int], now_ts: float, policy: SchedulingPolicy
) -> float:
    return fair_share_rank(usage.get(customer, 0), customer, ts, now_ts, policy)


def _lane_key(
    customer: str,
    item: tuple[float, str],
    usage: Mapping[str, int],
    now_ts: float,
    policy: SchedulingPolicy,
) -> tuple[float, float, str]:
    return (_rank(customer, item[0], usage, now_ts, policy), *item)


def _depth(queue: WorkloadQueue, workload_class: WorkloadClass) -> int:
    return sum(map(len, queue.lanes(workload_class).values()))


class DispatchOrder:
    """Queued workloads in dispatch order for one tick, reacting to what gets placed.

    `pop()` gives the next candidate; the caller answers with `done(spec, placed)` before the
    next `pop()`, which charges the customer's share and brings up that customer's next
    workload, so one that does not fit never holds up the ones behind it (the scheduler's
    starvation reservation keeps that from starving big gangs). A customer's waiting entry
    keeps the rank it was pushed with. Each pop costs O(log customers); the queue must not
    change while an order is open.
    """

    def __init__(
        self,
        queue: WorkloadQueue,
        usage: Mapping[str, int],
        now: datetime,
        policy: SchedulingPolicy,
    ) -> None:
        self._queue = queue
        self._usage = dict(usage)
        self._now_ts = now.timestamp()
        self._policy = policy
        self._classes = list(reversed(CLASSES_BY_PRIORITY))
        self._heap: list[tuple[float, float, str, str]] = []
        self._lanes: Mapping[str, Sequence[tuple[float, str]]] = {}
        self._cursor: dict[str, int] = {}

    def pop(self) -> WorkloadSpec | None:
        """The next candidate, or None when every queued workload has been offered."""
        while not self._heap:
            if not self._classes:
                return None
            self._open(self._classes.pop())
        return self._queue.get(heapq.heappop(self._heap)[2])

    def done(self, spec: WorkloadSpec, placed: bool) -> None:
        """Record the outcome for the last popped `spec`."""
        if placed:
            self.charge(spec.customer_id, spec.gpu_count)
        self._cursor[spec.customer_id] += 1
        self._push(spec.customer_id)

    def skip_class(self) -> None:
        """Offer nothing more of the current class (nothing of it can be placed this tick)."""
        self._heap.clear()

    def charge(self, customer_id: str, gpus: int) -> None:
        """Change a customer's held GPUs (negative when its workload is preempted)."""
        self._usage[customer_id] = self._usage.get(customer_id, 0) + gpus

    def fits_quota(self, spec: WorkloadSpec) -> bool:
        """Whether placing `spec` keeps its customer within the GPU quota."""
        quota = self._policy.gpu_quotas.get(spec.customer_id)
        held = self._usage.get(spec.customer_id, 0)
        return quota is None or held + spec.gpu_count <= quota

    def _open(self, workload_class: WorkloadClass) -> None:
        self._lanes = self._queue.lanes(workload_class)
        self._cursor = dict.fromkeys(self._lanes, 0)
        for customer in self._lanes:
            self._push(customer)

    def _push(self, customer: str) -> None:
        lane, i = self._lanes[customer], self._cursor[customer]
        if i < len(lane):
            ts, workload_id = lane[i]
            rank = _rank(customer, ts, self._usage, self._now_ts, self._policy)
            heapq.heappush(self._heap, (rank, ts, workload_id, customer))
