"""Placement: which free GPUs a workload gets.

GPUs are grouped in pools of one (site, family, memory); a gang takes all its GPUs from one pool
(one site, one kind of GPU) or waits. Inside a pool it goes to the single node with the fewest
free GPUs that still fit it (best fit, so whole nodes stay whole for big gangs), and only when no
node fits does it spread over the fewest nodes. A site never gets more busy GPUs than its budget.

Only schedulable GPUs (healthy, not cordoned) are ever free or counted as a pool's capacity; a
cordoned GPU keeps its workload until that drains, then stays idle while it is cordoned.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping, Sequence

from hcp.domain.errors import Conflict
from hcp.scheduling.model import Gpu, Placement, WorkloadSpec

PoolKey = tuple[str, str, float]
"""(site, family, memory_gb): GPUs that are interchangeable for placement."""


class _Pool:
    """Free GPUs of one pool by node, and nodes bucketed by their free count."""

    __slots__ = ("by_count", "capacity", "free", "nodes")

    def __init__(self) -> None:
        self.free = 0
        self.capacity = 0
        self.nodes: dict[str, list[str]] = {}
        self.by_count: list[dict[str, None]] = [{}]

    def add(self, node: str, gpu_id: str) -> None:
        ids = self.nodes.setdefault(node, [])
        self._move(node, len(ids), len(ids) + 1)
        insort(ids, gpu_id)
        self.free += 1

    def remove(self, node: str, gpu_id: str) -> None:
        ids = self.nodes[node]
        self._move(node, len(ids), len(ids) - 1)
        ids.remove(gpu_id)
        self.free -= 1

    def best_fit(self, count: int, skip: Sequence[str] = ()) -> tuple[int, str] | None:
        """The node with the fewest free GPUs >= `count` (not in `skip`), with that number."""
        for free in range(count, len(self.by_count)):
            for node in self.by_count[free]:
                if node not in skip:
                    return free, node
        return None

    def fewest_nodes(self, count: int) -> list[str] | None:
        """Fewest nodes with `count` free GPUs: the fullest ones, then a best fit for the rest."""
        chosen: list[str] = []
        remaining = count
        for free in range(len(self.by_count) - 1, 0, -1):
            for node in self.by_count[free]:
                if free >= remaining:
                    last = self.best_fit(remaining, chosen)
                    return [*chosen, last[1] if last else node]
                chosen.append(node)
                remaining -= free
        return None

    def _move(self, node: str, old: int, new: int) -> None:
        if old:
            del self.by_count[old][node]
        while len(self.by_count) <= new:
            self.by_count.append({})
        if new:
            self.by_count[new][node] = None


class FreeGpus:
    """Index of the free schedulable GPUs by pool and node. Unhealthy or cordoned GPUs never
    enter it."""

    def __init__(self, gpus: Iterable[Gpu], busy: Iterable[str] = ()) -> None:
        busy_ids = set(busy)
        self._gpus: dict[str, Gpu] = {}
        self._pools: dict[PoolKey, _Pool] = {}
        self._free_by_site: dict[str, int] = {}
        for gpu in gpus:
            if gpu.schedulable:
                self._index(gpu, free=gpu.id not in busy_ids)
        self._keys = sorted(self._pools)
        self._matching: dict[tuple[str | None, float], tuple[PoolKey, ...]] = {}

    def matching(self, spec: WorkloadSpec) -> tuple[PoolKey, ...]:
        """Pools whose GPUs suit `spec` (family, memory), in a fixed order."""
        want = (spec.gpu_family, spec.memory_gb_per_gpu)
        if want not in self._matching:
            self._matching[want] = tuple(k for k in self._keys if _suits(k, *want))
        return self._matching[want]

    def sites(self) -> set[str]:
        """Sites with at least one schedulable GPU."""
        return {key[0] for key in self._keys}

    def free_at(self, site: str) -> int:
        """Free schedulable GPUs at `site`."""
        return self._free_by_site.get(site, 0)

    def free_in(self, pool: PoolKey) -> int:
        return self._pools[pool].free

    def capacity(self, pool: PoolKey) -> int:
        """Schedulable GPUs of the pool, free or busy: the most it can ever give."""
        return self._pools[pool].capacity

    def pool_of(self, gpu_id: str) -> PoolKey | None:
        """The pool of a schedulable GPU; None for an unhealthy, cordoned or unknown one (its
        release frees no room there)."""
        gpu = self._gpus.get(gpu_id)
        return None if gpu is None else _key(gpu)

    def take(self, gpu_ids: Iterable[str]) -> None:
        """Mark GPUs busy; Conflict when one of them is not free (it would be double-booked)."""
        for gpu_id in gpu_ids:
            gpu = self._gpus.get(gpu_id)
            if gpu is None or gpu_id not in self._pools[_key(gpu)].nodes.get(gpu.node, ()):
                raise Conflict(f"GPU {gpu_id} is not free")
            self._pools[_key(gpu)].remove(gpu.node, gpu_id)
            self._free_by_site[gpu.site] -= 1

    def release(self, gpu_ids: Iterable[str]) -> None:
        """Mark GPUs free again; unhealthy, cordoned or unknown GPUs are ignored (they stay out
        of the free pool), a free one is a Conflict."""
        for gpu_id in gpu_ids:
            gpu = self._gpus.get(gpu_id)
            if gpu is None:
                continue
            if gpu_id in self._pools[_key(gpu)].nodes.get(gpu.node, ()):
                raise Conflict(f"GPU {gpu_id} is already free")
            self._pools[_key(gpu)].add(gpu.node, gpu_id)
            self._free_by_site[gpu.site] = self._free_by_site.get(gpu.site, 0) + 1

    def pick(self, pool: PoolKey, nodes: Sequence[str], count: int) -> tuple[str, ...]:
        """`count` free GPU ids from `nodes` of `pool`, filling the nodes in order."""
        ids = [i for node in nodes for i in self._pools[pool].nodes[node]]
        return tuple(ids[:count])

    def best_fit(self, pool: PoolKey, count: int) -> tuple[int, str] | None:
        return self._pools[pool].best_fit(count)

    def fewest_nodes(self, pool: PoolKey, count: int) -> list[str] | None:
        return self._pools[pool].fewest_nodes(count)

    def _index(self, gpu: Gpu, free: bool) -> None:
        self._gpus[gpu.id] = gpu
        key = _key(gpu)
        if key not in self._pools:
            self._pools[key] = _Pool()
        pool = self._pools[key]
        pool.capacity += 1
        if free:
            pool.add(gpu.node, gpu.id)
            self._free_by_site[gpu.site] = self._free_by_site.get(gpu.site, 0) + 1


def _key(gpu: Gpu) -> PoolKey:
    return (gpu.site, gpu.family, gpu.memory_gb)


def _suits(pool: PoolKey, family: str | None, memory_gb: float) -> bool:
    return (family is None or pool[1] == family) and pool[2] >= memory_gb


def place(
    workload: WorkloadSpec,
    free: FreeGpus,
    headroom: Mapping[str, int],
    pools: Iterable[PoolKey] | None = None,
) -> Placement | None:
    """Where `workload` would run now: all its GPUs or None (all-or-nothing; nothing is taken).

    `headroom` is how many more GPUs each site's budget lets be busy (absent site: none).
    `pools` narrows the choice (default: every pool that suits the workload). Among pools, one
    node beats several; then the tightest node, then the smallest memory that suits.
    """
    count = workload.gpu_count
    fitting = [
        p
        for p in (free.matching(workload) if pools is None else pools)
        if headroom.get(p[0], 0) >= count and free.free_in(p) >= count
    ]
    single = _on_one_node(free, fitting, count)
    if single is not None:
        pool, node = single
        return _placement(workload, free, pool, [node])
    spread = _on_fewest_nodes(free, fitting, count)
    return None if spread is None else _placement(workload, free, *spread)


def _on_one_node(
    free: FreeGpus, pools: Sequence[PoolKey], count: int
) -> tuple[PoolKey, str] | None:
    best: tuple[int, float, PoolKey, str] | None = None
    for pool in pools:
        fit = free.best_fit(pool, count)
        if fit is not None and (best is None or (fit[0], pool[2]) < best[:2]):
            best = (fit[0], pool[2], pool, fit[1])
    return None if best is None else (best[2], best[3])


def _on_fewest_nodes(
    free: FreeGpus, pools: Sequence[PoolKey], count: int
) -> tuple[PoolKey, list[str]] | None:
    best: tuple[int, float, PoolKey, list[str]] | None = None
    for pool in pools:
        nodes = free.fewest_nodes(pool, count)
        if nodes is not None and (best is None or (len(nodes), pool[2]) < best[:2]):
            best = (len(nodes), pool[2], pool, nodes)
    return None if best is None else (best[2], best[3])


def _placement(
    workload: WorkloadSpec, free: FreeGpus, pool: PoolKey, nodes: list[str]
) -> Placement:
    gpu_ids = free.pick(pool, nodes, workload.gpu_count)
    return Placement(workload.id, pool[0], gpu_ids, tuple(sorted(nodes)))
