"""Queue ordering: class first, weighted fair share, aging, quotas, queue positions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.domain.errors import Conflict, NotFound
from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.model import SchedulingPolicy, WorkloadSpec
from hcp.scheduling.queue import DispatchOrder, WorkloadQueue, queue_position

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
REALTIME, BATCH, TRAINING = (
    WorkloadClass.AI_INFERENCE_REALTIME,
    WorkloadClass.AI_INFERENCE_BATCH,
    WorkloadClass.AI_TRAINING,
)


def job(
    wid: str,
    customer: str = "a",
    cls: WorkloadClass = TRAINING,
    minutes_ago: float = 0,
    gpus: int = 1,
) -> WorkloadSpec:
    submitted = NOW - timedelta(minutes=minutes_ago)
    return WorkloadSpec(wid, customer, cls, None, gpus, 0, 1.0, submitted)


def offered(
    queue: WorkloadQueue,
    usage: dict[str, int] | None = None,
    policy: SchedulingPolicy | None = None,
    placed: bool = False,
) -> list[str]:
    """Ids in the order the dispatch offers them, every one placed (or none)."""
    order = DispatchOrder(queue, usage or {}, NOW, policy or SchedulingPolicy())
    ids = []
    while (spec := order.pop()) is not None:
        ids.append(spec.id)
        order.done(spec, placed)
    return ids


def test_class_comes_first() -> None:
    queue = WorkloadQueue(
        [job("train", minutes_ago=600), job("batch", cls=BATCH), job("rt", cls=REALTIME)]
    )

    assert offered(queue) == ["rt", "batch", "train"]


def test_the_customer_holding_fewer_gpus_goes_first() -> None:
    queue = WorkloadQueue([job("heavy", "a", minutes_ago=5), job("light", "b")])

    assert offered(queue, usage={"a": 8}) == ["light", "heavy"]


def test_weights_scale_the_share() -> None:
    queue = WorkloadQueue([job("big-customer", "a"), job("small-customer", "b")])
    policy = SchedulingPolicy(customer_weights={"a": 4.0})

    # a holds 8 GPUs at weight 4 (share 2); b holds 4 at weight 1 (share 4)
    assert offered(queue, usage={"a": 8, "b": 4}, policy=policy)[0] == "big-customer"


def test_placements_alternate_between_equal_customers() -> None:
    queue = WorkloadQueue(
        [job(f"a{i}", "a", minutes_ago=10 - i) for i in range(3)]
        + [job(f"b{i}", "b", minutes_ago=10 - i) for i in range(3)]
    )
    policy = SchedulingPolicy(aging_share_per_hour=0.0)

    order = offered(queue, policy=policy, placed=True)

    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_within_one_customer_first_come_first_served() -> None:
    queue = WorkloadQueue([job("new", minutes_ago=1), job("old", minutes_ago=30)])

    assert offered(queue) == ["old", "new"]


def test_aging_lets_an_old_workload_of_a_heavy_customer_pass_new_ones() -> None:
    queue = WorkloadQueue([job("old-heavy", "a", minutes_ago=12 * 60), job("new-light", "b")])
    usage = {"a": 10, "b": 0}

    assert offered(queue, usage=usage)[0] == "old-heavy"  # 12 h x 1.0 credit > share 10
    no_aging = SchedulingPolicy(aging_share_per_hour=0.0)
    assert offered(queue, usage=usage, policy=no_aging)[0] == "new-light"


def test_aging_never_lifts_a_lower_class_over_a_higher_one() -> None:
    queue = WorkloadQueue([job("ancient-training", minutes_ago=10**6), job("rt", cls=REALTIME)])

    assert offered(queue, usage={"a": 100})[0] == "rt"


def test_a_workload_over_its_customer_quota_does_not_fit() -> None:
    order = DispatchOrder(WorkloadQueue(), {"a": 6}, NOW, SchedulingPolicy(gpu_quotas={"a": 8}))

    assert order.fits_quota(job("two", gpus=2))
    assert not order.fits_quota(job("four", gpus=4))
    assert order.fits_quota(job("other-customer", "b", gpus=64))


def test_queue_rejects_duplicates_and_unknown_removals() -> None:
    queue = WorkloadQueue([job("w")])

    with pytest.raises(Conflict):
        queue.add(job("w"))
    with pytest.raises(NotFound):
        queue.remove("missing")
    assert queue.remove("w").id == "w"
    assert len(queue) == 0 and "w" not in queue


def test_depth_by_class() -> None:
    queue = WorkloadQueue([job("a", cls=REALTIME), job("b"), job("c", "x")])

    assert queue.depth_by_class() == {REALTIME: 1, BATCH: 0, TRAINING: 2}


def test_queue_position_of_a_new_submission() -> None:
    queue = WorkloadQueue(
        [job("rt", cls=REALTIME), job("t1", minutes_ago=5), job("t2", "b", minutes_ago=1)]
    )
    queue.add(job("new", "c"))

    assert queue_position(queue, "new", {}, NOW, SchedulingPolicy()) == 4
    assert queue_position(queue, "rt", {}, NOW, SchedulingPolicy()) == 1


queued = st.lists(
    st.builds(
        job,
        wid=st.uuids().map(str),
        customer=st.sampled_from(["a", "b", "c", "d"]),
        cls=st.sampled_from(list(WorkloadClass)),
        minutes_ago=st.integers(0, 48 * 60),
    ),
    max_size=40,
    unique_by=lambda s: s.id,
)
usages = st.fixed_dictionaries({c: st.integers(0, 40) for c in "abcd"})


@given(queued, usages, st.sampled_from([0.0, 0.5, 2.0]))
def test_queue_position_is_the_place_in_the_dispatch_order(
    specs: list[WorkloadSpec], usage: dict[str, int], aging: float
) -> None:
    queue = WorkloadQueue(specs)
    policy = SchedulingPolicy(aging_share_per_hour=aging)

    order = offered(queue, usage=usage, policy=policy)

    assert sorted(order) == sorted(s.id for s in specs)
    for place, workload_id in enumerate(order, start=1):
        assert queue_position(queue, workload_id, usage, NOW, policy) == place
