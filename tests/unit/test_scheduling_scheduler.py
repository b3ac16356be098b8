"""One scheduling tick, scenario by scenario: failures and retries, power budget, preemption for
realtime demand, fairness, quotas, gangs, starvation, cordoned GPUs, never placing a workload
twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hcp.domain.errors import Conflict
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
from hcp.scheduling.queue import WorkloadQueue, queue_position
from hcp.scheduling.scheduler import schedule

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
REALTIME, BATCH, TRAINING = (
    WorkloadClass.AI_INFERENCE_REALTIME,
    WorkloadClass.AI_INFERENCE_BATCH,
    WorkloadClass.AI_TRAINING,
)


def node(
    name: str, size: int = 4, site: str = "s1", healthy: bool = True, cordoned: bool = False
) -> list[Gpu]:
    return [Gpu(f"{name}-g{i}", name, site, "H100", 80, healthy, cordoned) for i in range(size)]


def job(
    wid: str,
    cls: WorkloadClass = TRAINING,
    gpus: int = 1,
    customer: str = "c",
    minutes_ago: float = 0,
    retries: int = 0,
    checkpointable: bool = False,
) -> WorkloadSpec:
    submitted = NOW - timedelta(minutes=minutes_ago)
    return WorkloadSpec(
        wid,
        customer,
        cls,
        None,
        gpus,
        0,
        1.0,
        submitted,
        checkpointable=checkpointable,
        retries=retries,
    )


def on(spec: WorkloadSpec, gpus: list[Gpu], hours: float = 1.0) -> RunningWorkload:
    """`spec` running on `gpus` since `hours` ago."""
    return RunningWorkload(spec, tuple(g.id for g in gpus), NOW - timedelta(hours=hours))


def placed(decision: SchedulingDecision) -> dict[str, tuple[str, ...]]:
    return {p.workload_id: p.gpu_ids for p in decision.placements}


def stopped(decision: SchedulingDecision) -> dict[str, PreemptionReason]:
    return {p.workload_id: p.reason for p in decision.preemptions}


def test_a_gpu_failure_requeues_its_workload_with_one_more_retry() -> None:
    gpus = [*node("a", 2), *node("b", 2)]
    gpus[1] = Gpu("a-g1", "a", "s1", "H100", 80, healthy=False)
    victim = on(job("w", gpus=2), gpus[:2])

    decision = schedule(WorkloadQueue(), gpus, [victim], {"s1": 4}, NOW)

    assert stopped(decision) == {"w": PreemptionReason.GPU_FAILURE}
    assert decision.preemptions[0].action is PreemptionAction.REQUEUE
    assert [(s.id, s.retries) for s in decision.requeues] == [("w", 1)]
    assert decision.placements == ()  # not started again in the tick that stopped it


def test_a_node_failure_is_named_so() -> None:
    dead = node("a", 2, healthy=False)
    running = [on(job("on-dead-node"), dead[:1]), on(job("on-vanished-gpu"), node("gone", 1))]

    decision = schedule(WorkloadQueue(), [*dead, *node("b", 2)], running, {"s1": 4}, NOW)

    assert stopped(decision) == {
        "on-dead-node": PreemptionReason.NODE_FAILURE,
        "on-vanished-gpu": PreemptionReason.NODE_FAILURE,
    }


def test_a_failed_checkpointable_workload_resumes_from_its_checkpoint() -> None:
    gpus = node("a", 1, healthy=False)
    saver = on(job("saver", checkpointable=True), gpus)

    decision = schedule(WorkloadQueue(), gpus, [saver], {"s1": 1}, NOW)

    assert decision.preemptions[0].action is PreemptionAction.CHECKPOINT


def test_the_retry_limit_fails_the_workload() -> None:
    gpus = node("a", 1, healthy=False)
    worn = on(job("worn", retries=2), gpus)

    decision = schedule(
        WorkloadQueue(), gpus, [worn], {"s1": 1}, NOW, SchedulingPolicy(max_retries=2)
    )

    assert decision.failed == ("worn",)
    assert decision.requeues == ()
    assert decision.preemptions[0].action is PreemptionAction.FAIL


def test_a_queued_copy_of_a_running_workload_is_never_placed() -> None:
    gpus = node("a", 4)
    spec = job("twin")

    decision = schedule(WorkloadQueue([spec]), gpus, [on(spec, gpus[:1])], {"s1": 4}, NOW)

    assert decision.placements == ()


def test_a_workload_stopped_by_failure_is_not_placed_in_the_same_tick_from_the_queue() -> None:
    gpus = [*node("a", 1, healthy=False), *node("b", 4)]
    spec = job("w")

    decision = schedule(WorkloadQueue([spec]), gpus, [on(spec, gpus[:1])], {"s1": 5}, NOW)

    assert "w" in stopped(decision) and decision.placements == ()


def test_a_running_set_that_shares_a_gpu_is_refused() -> None:
    gpus = node("a", 2)
    running = [on(job("x"), gpus[:1]), on(job("y"), gpus[:1])]

    with pytest.raises(Conflict):
        schedule(WorkloadQueue(), gpus, running, {"s1": 2}, NOW)


def test_realtime_preempts_checkpointable_training_first() -> None:
    gpus = node("a", 2)
    running = [
        on(job("plain", gpus=1), gpus[:1], hours=0.5),
        on(job("saves", gpus=1, checkpointable=True), gpus[1:], hours=3),
    ]
    queue = WorkloadQueue([job("rt", REALTIME)])

    decision = schedule(queue, gpus, running, {"s1": 2}, NOW)

    assert stopped(decision) == {"saves": PreemptionReason.REALTIME_DEMAND}
    assert decision.preemptions[0].for_workload_id == "rt"
    assert decision.preemptions[0].action is PreemptionAction.CHECKPOINT
    assert placed(decision) == {"rt": ("a-g1",)}
    assert [(s.id, s.retries) for s in decision.requeues] == [("saves", 0)]  # not a failure


def test_the_minimum_runtime_protects_a_young_workload() -> None:
    gpus = node("a", 1)
    young = on(job("young"), gpus, hours=0.05)

    decision = schedule(WorkloadQueue([job("rt", REALTIME)]), gpus, [young], {"s1": 1}, NOW)

    assert decision.preemptions == () and decision.placements == ()


def test_realtime_preempts_for_budget_as_well_as_for_gpus() -> None:
    a, b = node("a", 2), node("b", 2)
    # the site may run 2 GPUs, both taken by training on node a; node b is idle
    training = on(job("train", gpus=2), a, hours=2)

    decision = schedule(WorkloadQueue([job("rt", REALTIME, 2)]), a + b, [training], {"s1": 2}, NOW)

    assert stopped(decision) == {"train": PreemptionReason.REALTIME_DEMAND}
    assert len(placed(decision)["rt"]) == 2


def test_batch_preempts_training_but_not_realtime() -> None:
    gpus = node("a", 2)
    running = [on(job("rt", REALTIME), gpus[:1], 2), on(job("train"), gpus[1:], 2)]

    decision = schedule(WorkloadQueue([job("batch", BATCH, 2)]), gpus, running, {"s1": 2}, NOW)

    assert decision.preemptions == ()  # two GPUs are needed; only one is preemptible
    one = schedule(WorkloadQueue([job("batch", BATCH)]), gpus, running, {"s1": 2}, NOW)
    assert stopped(one) == {"train": PreemptionReason.BATCH_DEMAND}


def test_a_lower_budget_sheds_training_then_batch_and_keeps_realtime() -> None:
    gpus = node("a", 4)
    running = [
        on(job("rt", REALTIME, 2), gpus[0:2]),
        on(job("batch", BATCH), gpus[2:3]),
        on(job("train", checkpointable=True), gpus[3:4]),
    ]

    decision = schedule(WorkloadQueue(), gpus, running, {"s1": 2}, NOW)

    assert stopped(decision) == {
        "train": PreemptionReason.POWER_BUDGET,
        "batch": PreemptionReason.POWER_BUDGET,
    }
    assert {p.workload_id: p.action for p in decision.preemptions} == {
        "train": PreemptionAction.PAUSE,
        "batch": PreemptionAction.REQUEUE,
    }


def test_a_site_the_plan_leaves_out_gets_no_work() -> None:
    gpus = node("a", 4, site="s1") + node("b", 4, site="s2")

    decision = schedule(WorkloadQueue([job("w", gpus=2)]), gpus, [], {"s2": 2}, NOW)

    assert {g[:1] for g in placed(decision)["w"]} == {"b"}


def test_equal_customers_get_equal_gpus() -> None:
    gpus = node("a", 4)
    queue = WorkloadQueue(
        [job(f"a{i}", customer="a", minutes_ago=30 - i) for i in range(4)]
        + [job(f"b{i}", customer="b", minutes_ago=10 - i) for i in range(4)]
    )

    decision = schedule(queue, gpus, [], {"s1": 4}, NOW)

    assert sorted(placed(decision)) == ["a0", "a1", "b0", "b1"]


def test_a_customer_over_quota_waits_while_a_smaller_workload_fits() -> None:
    gpus = node("a", 8)
    running = [on(job("held", gpus=2, customer="q"), gpus[:2])]
    queue = WorkloadQueue(
        [job("big", gpus=4, customer="q", minutes_ago=9), job("small", gpus=2, customer="q")]
    )
    policy = SchedulingPolicy(gpu_quotas={"q": 4})

    decision = schedule(queue, gpus, running, {"s1": 8}, NOW, policy)

    assert sorted(placed(decision)) == ["small"]


def test_a_gang_prefers_one_node_and_is_all_or_nothing() -> None:
    gpus = node("a", 4) + node("b", 4)
    running = [on(job("r1"), gpus[0:1], 0.01), on(job("r2"), gpus[4:6], 0.01)]
    queue = WorkloadQueue([job("three", gpus=3, minutes_ago=5), job("too-big", gpus=6)])

    decision = schedule(queue, gpus, running, {"s1": 8}, NOW)

    assert placed(decision) == {"three": ("a-g1", "a-g2", "a-g3")}


def test_a_starving_gang_keeps_newcomers_off_its_gpus() -> None:
    gpus = node("a", 4)
    running = [on(job("r", REALTIME, 2), gpus[:2], 0.01)]
    queue = WorkloadQueue([job("gang", gpus=4, minutes_ago=300), job("small", minutes_ago=1)])

    starving = schedule(queue, gpus, running, {"s1": 4}, NOW)
    patient = schedule(
        queue, gpus, running, {"s1": 4}, NOW, SchedulingPolicy(starvation_wait=timedelta(days=1))
    )

    assert starving.placements == ()  # the small one would fragment what the gang waits for
    assert list(placed(patient)) == ["small"]


def test_room_left_over_by_a_preemption_is_used_in_the_same_tick() -> None:
    gpus = node("a", 4)
    training = on(job("train", gpus=4), gpus, hours=2)
    queue = WorkloadQueue([job("rt", REALTIME, 2), job("next", TRAINING, 2)])

    decision = schedule(queue, gpus, [training], {"s1": 4}, NOW)

    assert sorted(placed(decision)) == ["next", "rt"]


def cordon(gpu: Gpu) -> Gpu:
    return replace(gpu, cordoned=True)


def test_a_cordoned_gpu_gets_no_work_even_when_it_is_the_only_free_one() -> None:
    gpus = [*node("a", 1), *node("b", 1, cordoned=True)]
    running = [on(job("busy"), gpus[:1])]
    queue = WorkloadQueue([job("w")])

    decision = schedule(queue, gpus, running, {"s1": 2}, NOW)

    assert decision == SchedulingDecision()  # it waits, as when no GPU is free at all
    assert decision == schedule(queue, gpus[:1], running, {"s1": 2}, NOW)


def test_work_on_a_gpu_that_becomes_cordoned_drains_and_the_gpu_then_stays_idle() -> None:
    gpus = node("a", 2)  # the site's only node
    drain = on(job("drain", gpus=2), gpus, hours=0.5)
    queue = WorkloadQueue([job("next")])
    cordoned = [cordon(g) for g in gpus]

    for tick in range(1, 4):
        now = NOW + timedelta(minutes=5 * tick)
        decision = schedule(queue, cordoned, [drain], {"s1": 2}, now)
        assert decision == SchedulingDecision()  # not a failure, not stopped, nothing new

    ended = schedule(queue, cordoned, [], {"s1": 2}, NOW + timedelta(minutes=20))
    assert ended.placements == ()


def test_cordoning_is_no_failure_but_a_cordoned_unhealthy_gpu_is_one() -> None:
    drained = node("a", 2, cordoned=True)  # a node whose GPUs are all cordoned is not dead
    sick = node("b", 2)
    sick[0] = replace(sick[0], healthy=False, cordoned=True)
    dead = node("c", 1, healthy=False, cordoned=True)
    running = [on(job("drains"), drained[:1]), on(job("sick"), sick[:1]), on(job("dead"), dead)]

    decision = schedule(WorkloadQueue(), [*drained, *sick, *dead], running, {"s1": 5}, NOW)

    assert stopped(decision) == {
        "sick": PreemptionReason.GPU_FAILURE,
        "dead": PreemptionReason.NODE_FAILURE,
    }


def test_a_gang_is_placed_as_if_its_best_node_had_one_gpu_fewer() -> None:
    a, b = node("a", 4), node("b", 2)
    queue = WorkloadQueue([job("gang", gpus=4)])

    decision = schedule(queue, [*a[:3], cordon(a[3]), *b], [], {"s1": 6}, NOW)

    assert decision == schedule(queue, [*a[:3], *b], [], {"s1": 6}, NOW)
    assert placed(decision) == {"gang": ("a-g0", "a-g1", "a-g2", "b-g0")}


def test_realtime_never_stops_work_only_to_free_cordoned_gpus() -> None:
    gpus = node("a", 3)
    gpus[0] = cordon(gpus[0])
    running = [
        on(job("draining", checkpointable=True), gpus[:1], hours=2),  # the cheapest victim
        on(job("plain"), gpus[1:2], hours=2),
    ]
    rt = WorkloadQueue([job("rt", REALTIME, 2)])

    decision = schedule(rt, gpus, running, {"s1": 3}, NOW)
    alone = schedule(rt, [gpus[0], gpus[2]], running[:1], {"s1": 3}, NOW)

    assert stopped(decision) == {"plain": PreemptionReason.REALTIME_DEMAND}
    assert placed(decision) == {"rt": ("a-g1", "a-g2")}
    assert alone == SchedulingDecision()  # stopping "draining" would free no usable GPU


def test_draining_work_may_be_stopped_for_budget_and_its_gpus_stay_out() -> None:
    a, b = node("a", 2, cordoned=True), node("b", 2)
    drain = on(job("drain", gpus=2), a, hours=2)
    queue = WorkloadQueue([job("rt", REALTIME, 2), job("next")])

    decision = schedule(queue, a + b, [drain], {"s1": 3}, NOW)

    assert stopped(decision) == {"drain": PreemptionReason.REALTIME_DEMAND}
    assert placed(decision) == {"rt": ("b-g0", "b-g1")}  # "next" gets no cordoned GPU


def test_a_starving_gang_that_fits_only_with_a_cordoned_gpu_reserves_nothing() -> None:
    gpus = node("a", 4)
    gpus[3] = cordon(gpus[3])
    queue = WorkloadQueue([job("gang", gpus=4, minutes_ago=300), job("small", minutes_ago=1)])

    decision = schedule(queue, gpus, [], {"s1": 4}, NOW)

    assert list(placed(decision)) == ["small"]  # the gang cannot fit while the GPU is cordoned


def test_a_close_deadline_goes_before_work_without_one_of_the_same_customer() -> None:
    """One GPU free: a 10 h job with no deadline, queued first, took it, and a 1 h job due in
    90 minutes (meetable now, not later: it cannot preempt its own class) missed its deadline."""
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    training = WorkloadClass.AI_TRAINING
    long = WorkloadSpec("long", "a", training, "H100", 1, 0, 10.0, now - timedelta(minutes=10))
    due = WorkloadSpec(
        "due",
        "a",
        training,
        "H100",
        1,
        0,
        1.0,
        now - timedelta(minutes=5),
        deadline=now + timedelta(minutes=90),
    )
    later = WorkloadSpec(
        "later",
        "a",
        training,
        "H100",
        1,
        0,
        1.0,
        now - timedelta(minutes=5),
        deadline=now + timedelta(days=7),
    )
    queue = WorkloadQueue([long, due, later])
    decision = schedule(queue, [Gpu("g0", "n0", "s", "H100", 80.0)], [], {"s": 1}, now)
    assert [p.workload_id for p in decision.placements] == ["due"]
    # A far deadline keeps its turn: first come, first served.
    assert queue_position(queue, "long", {}, now, SchedulingPolicy()) == 2
    assert queue_position(queue, "later", {}, now, SchedulingPolicy()) == 3


def test_a_deadline_no_estimate_can_meet_earns_no_more_credit_than_a_meetable_one() -> None:
    """Customer b holds 30 GPUs, customer a none and has waited an hour: fair share gives a the
    last GPU, even against b's job due in an hour (its 24 h of deadline credit is not worth 30
    GPUs). Before, b took it by declaring the same deadline on an 8,000 h estimate: a latest
    start 8,000 h in the past counted as 8,000 h of waiting against every other customer."""
    training = WorkloadClass.AI_TRAINING
    gpus = [Gpu(f"g{i}", "n0", "s", "H100", 80.0) for i in range(31)]
    held = WorkloadSpec("b-run", "b", training, "H100", 30, 0, 10.0, NOW - timedelta(hours=5))
    running = [RunningWorkload(held, tuple(f"g{i}" for i in range(30)), NOW - timedelta(hours=5))]
    waiting = WorkloadSpec("a", "a", training, "H100", 1, 0, 1.0, NOW - timedelta(hours=1))
    for hours in (1.0, 8000.0):  # meetable if started now; never meetable
        pushy = WorkloadSpec(
            "b", "b", training, "H100", 1, 0, hours, NOW, deadline=NOW + timedelta(hours=1)
        )
        decision = schedule(WorkloadQueue([waiting, pushy]), gpus, running, {"s": 31}, NOW)
        assert [p.workload_id for p in decision.placements] == ["a"], hours
