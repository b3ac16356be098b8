"""Placement: filters, gangs (one node first, all-or-nothing), best fit, site budgets, cordoned
GPUs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.domain.errors import Conflict
from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import Gpu, WorkloadSpec
from hcp.scheduling.placement import FreeGpus, place

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def node(
    name: str, size: int, site: str = "s1", family: str = "H100", memory: float = 80
) -> list[Gpu]:
    return [Gpu(f"{name}-g{i}", name, site, family, memory) for i in range(size)]


def job(count: int, family: str | None = None, memory: float = 0, wid: str = "w") -> WorkloadSpec:
    return WorkloadSpec(wid, "c", WorkloadClass.AI_TRAINING, family, count, memory, 1.0, NOW)


def busy_all_but(gpus: list[Gpu], free: int) -> list[str]:
    """Ids of every GPU of `gpus` except the first `free`."""
    return [g.id for g in gpus[free:]]


def fleet_with_free(free_per_node: dict[str, int], size: int = 8) -> FreeGpus:
    gpus: list[Gpu] = []
    busy: list[str] = []
    for name, free in free_per_node.items():
        on_node = node(name, size)
        gpus += on_node
        busy += busy_all_but(on_node, free)
    return FreeGpus(gpus, busy)


def test_a_gang_goes_to_the_node_with_the_fewest_free_gpus_that_fit() -> None:
    free = fleet_with_free({"big": 8, "small": 3, "mid": 5})

    three, four = place(job(3), free, {"s1": 99}), place(job(4), free, {"s1": 99})

    assert three is not None and three.nodes == ("small",)
    assert four is not None and four.nodes == ("mid",)


def test_a_gang_that_fits_one_node_is_not_spread() -> None:
    free = fleet_with_free({"a": 4, "b": 4, "c": 6})

    placement = place(job(6), free, {"s1": 99})

    assert placement is not None and placement.nodes == ("c",)


def test_a_gang_bigger_than_any_free_node_spreads_over_the_fewest_nodes() -> None:
    free = fleet_with_free({"n6": 6, "n4": 4, "n3a": 3, "n3b": 3})

    placement = place(job(9), free, {"s1": 99})

    assert placement is not None
    assert len(placement.gpu_ids) == 9
    assert len(placement.nodes) == 2
    assert "n6" in placement.nodes and "n4" not in placement.nodes  # n4 stays whole


def test_a_gang_is_all_or_nothing() -> None:
    free = fleet_with_free({"a": 4, "b": 3})

    assert place(job(8), free, {"s1": 99}) is None
    assert free.free_in(("s1", "H100", 80)) == 7  # nothing was taken


def test_a_gang_never_spans_sites() -> None:
    gpus = node("a", 4, site="s1") + node("b", 4, site="s2")

    assert place(job(8), FreeGpus(gpus), {"s1": 8, "s2": 8}) is None


def test_family_memory_and_health_filter_the_gpus() -> None:
    gpus = [
        *node("a100", 2, family="A100", memory=40),
        *node("h100", 2, family="H100", memory=80),
        Gpu("sick", "sick-node", "s1", "H100", 80, healthy=False),
    ]
    free = FreeGpus(gpus)

    h100 = place(job(1, family="H100"), free, {"s1": 9})
    big_memory = place(job(2, memory=60), free, {"s1": 9})

    assert h100 is not None and h100.nodes == ("h100",)
    assert big_memory is not None and big_memory.nodes == ("h100",)
    assert place(job(3, family="H100"), free, {"s1": 9}) is None  # the sick GPU never counts


def test_any_family_takes_the_smallest_memory_that_suits() -> None:
    free = FreeGpus(node("a100", 2, family="A100", memory=40) + node("h100", 2, memory=80))

    placement = place(job(2, memory=16), free, {"s1": 9})

    assert placement is not None and placement.nodes == ("a100",)


def test_a_site_budget_caps_the_busy_gpus() -> None:
    gpus = node("a", 8, site="s1") + node("b", 8, site="s2")
    free = FreeGpus(gpus)

    assert place(job(4), free, {"s1": 3}) is None  # s2 absent from the budgets: none allowed
    placement = place(job(4), free, {"s1": 3, "s2": 4})
    assert placement is not None and placement.site == "s2"


def test_taking_a_busy_gpu_or_freeing_a_free_one_is_a_conflict() -> None:
    free = FreeGpus(node("a", 2), busy=["a-g0"])

    with pytest.raises(Conflict):
        free.take(["a-g0"])
    with pytest.raises(Conflict):
        free.release(["a-g1"])


def test_a_cordoned_gpu_is_neither_free_nor_capacity_nor_freed_on_release() -> None:
    gpus = [*node("a", 2), Gpu("a-g2", "a", "s1", "H100", 80, cordoned=True)]
    pool = ("s1", "H100", 80)
    free = FreeGpus(gpus, busy=["a-g0", "a-g2"])

    free.release(["a-g0", "a-g2"])
    free.release(["a-g2"])  # still not free, so no conflict either

    assert (free.free_in(pool), free.capacity(pool), free.free_at("s1")) == (2, 2, 2)
    assert free.pool_of("a-g2") is None  # stopping its workload frees no room in the pool
    assert place(job(3), free, {"s1": 9}) is None
    with pytest.raises(Conflict):
        free.take(["a-g2"])


@st.composite
def fleets(draw: st.DrawFn) -> list[Gpu]:
    gpus: list[Gpu] = []
    for n in range(draw(st.integers(1, 6))):
        site = draw(st.sampled_from(["s1", "s2"]))
        family, memory = draw(st.sampled_from([("H100", 80.0), ("A100", 40.0), ("A100", 80.0)]))
        for i in range(draw(st.integers(1, 8))):
            healthy = draw(st.booleans()) or draw(st.booleans())
            cordoned = draw(st.integers(0, 4)) == 0
            gpus.append(Gpu(f"n{n}-g{i}", f"n{n}", site, family, memory, healthy, cordoned))
    return gpus


jobs = st.builds(
    job,
    count=st.integers(1, 12),
    family=st.sampled_from([None, "H100", "A100"]),
    memory=st.sampled_from([0.0, 40.0, 80.0]),
)


@given(fleets(), st.lists(jobs, max_size=15), st.integers(0, 30), st.integers(0, 30))
def test_placements_never_share_a_gpu_and_always_suit(
    gpus: list[Gpu], specs: list[WorkloadSpec], budget_1: int, budget_2: int
) -> None:
    by_id = {g.id: g for g in gpus}
    free, headroom = FreeGpus(gpus), {"s1": budget_1, "s2": budget_2}
    taken: set[str] = set()
    for spec in specs:
        placement = place(spec, free, headroom)
        if placement is None:
            continue
        chosen = [by_id[i] for i in placement.gpu_ids]
        assert len(set(placement.gpu_ids)) == spec.gpu_count
        assert not taken.intersection(placement.gpu_ids)
        assert all(g.schedulable and g.site == placement.site for g in chosen)
        assert all(spec.gpu_family in (None, g.family) for g in chosen)
        assert len({(g.family, g.memory_gb) for g in chosen}) == 1
        assert all(g.memory_gb >= spec.memory_gb_per_gpu for g in chosen)
        free.take(placement.gpu_ids)
        headroom[placement.site] -= spec.gpu_count
        assert headroom[placement.site] >= 0
        taken.update(placement.gpu_ids)
