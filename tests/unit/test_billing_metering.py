"""Metering: GPU-hours and kWh per workload per interval, against hand-worked numbers, and the
conservation law (a run cut into consecutive intervals bills exactly its GPUs × duration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.billing.metering import (
    EnergySource,
    PowerSample,
    Run,
    UsageRecord,
    held_energy_j,
    meter_interval,
    month_pieces,
)
from hcp.billing.prices import Tier
from hcp.billing.rounding import QUANTITY_STEP, micro_units
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T15 = T0 + timedelta(minutes=15)
TRAINING = WorkloadClass.AI_TRAINING


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def run(
    workload_id: str = "w1",
    gpu_ids: tuple[str, ...] = ("g1",),
    started_at: datetime = T0,
    stopped_at: datetime | None = None,
    tier: Tier = Tier.STANDARD,
) -> Run:
    return Run(workload_id, "cust-1", TRAINING, "H100", gpu_ids, started_at, stopped_at, tier)


def samples(*points: tuple[float, float]) -> list[PowerSample]:
    """Samples at (minutes after T0, W)."""
    return [PowerSample(minutes(m), w) for m, w in points]


# --- hand-worked -----------------------------------------------------------------------------


def test_a_run_is_clipped_to_the_interval_and_estimated_without_telemetry() -> None:
    # 2 H100s from 12:05 to 12:20, metered for 12:00-12:15: 2 × 10 min = 20/60 = 0.333333 GPU-h.
    # No samples: 700 W × 2 GPUs × 600 s = 840,000 J = 840,000 / 3,600,000 = 0.233333 kWh.
    records = meter_interval([run(gpu_ids=("g1", "g2"), started_at=minutes(5))], T0, T15, {})
    assert records == [
        UsageRecord(
            "w1", "cust-1", TRAINING, "H100", Tier.STANDARD, T0, T15,
            gpu_hours=Decimal("0.333333"),
            energy_kwh=Decimal("0.233333"),
            energy_source=EnergySource.ESTIMATED,
        )
    ]  # fmt: skip


def test_energy_is_integrated_by_step_hold() -> None:
    # 500 W from 12:00, 600 W from 12:05, 400 W from 12:10 until 12:15:
    # 500 × 300 + 600 × 300 + 400 × 300 = 450,000 J = 0.125 kWh.
    power = {"g1": samples((0, 500), (5, 600), (10, 400))}
    (record,) = meter_interval([run()], T0, T15, power)
    assert record.energy_kwh == Decimal("0.125")
    assert record.energy_source is EnergySource.TELEMETRY
    assert record.gpu_hours == Decimal("0.25")


def test_a_sample_before_the_span_holds_into_it_and_later_ones_are_ignored() -> None:
    # 300 W held from 11:58 over 12:03-12:07 (240 s), 900 W over 12:07-12:10 (180 s):
    # 72,000 + 162,000 = 234,000 J; the 12:12 sample is after the run stopped.
    power = samples((-2, 300), (7, 900), (12, 5000))
    assert held_energy_j(power, minutes(3), minutes(10)) == Decimal(234_000)


def test_the_span_before_the_first_sample_takes_its_value() -> None:
    # 400 W backfilled over 12:00-12:05 then held to 12:10: 400 × 600 = 240,000 J.
    assert held_energy_j(samples((5, 400)), T0, minutes(10)) == Decimal(240_000)


def test_a_sample_after_the_span_is_the_nearest_reading_and_is_used() -> None:
    # 400 W backfilled over 12:00-12:10: 240,000 J; the GPU was measured, only later.
    assert held_energy_j(samples((10, 400)), T0, minutes(10)) == Decimal(240_000)


def test_no_samples_measure_nothing() -> None:
    assert held_energy_j([], T0, minutes(10)) is None


def test_one_gpu_without_samples_makes_the_record_estimated() -> None:
    # g1 measured at 350 W: 350 × 900 = 315,000 J; g2 estimated at 700 W: 630,000 J.
    # 945,000 J / 3,600,000 = 0.2625 kWh.
    power = {"g1": samples((0, 350))}
    (record,) = meter_interval([run(gpu_ids=("g1", "g2"))], T0, T15, power)
    assert record.energy_kwh == Decimal("0.2625")
    assert record.energy_source is EnergySource.ESTIMATED


def test_runs_outside_the_interval_make_no_record() -> None:
    before = run("w1", started_at=minutes(-30), stopped_at=T0)
    after = run("w2", started_at=T15)
    empty = run("w3", started_at=minutes(5), stopped_at=minutes(5))
    assert meter_interval([before, after, empty], T0, T15, {}) == []


def test_two_runs_of_one_workload_in_an_interval_make_one_record() -> None:
    # 12:00-12:05 on g1 then 12:10-12:15 on g2: 5 + 5 minutes = 10/60 = 0.166667 GPU-h
    # (0.083333 + 0.083333 = 0.166666 with each run rounded on its own).
    first = run(gpu_ids=("g1",), stopped_at=minutes(5))
    second = run(gpu_ids=("g2",), started_at=minutes(10))
    (record,) = meter_interval([first, second], T0, T15, {})
    assert record.gpu_hours == Decimal("0.166666")
    # 700 W × 600 s = 420,000 J = 0.116667 kWh, as 0.058333 × 2
    assert record.energy_kwh == Decimal("0.116666")


def test_two_runs_of_one_workload_that_buy_different_things_are_refused() -> None:
    standard = run(stopped_at=minutes(5))
    interruptible = run(started_at=minutes(10), tier=Tier.INTERRUPTIBLE)
    with pytest.raises(ValidationError, match="runs of w1"):
        meter_interval([standard, interruptible], T0, T15, {}, rt_price_usd_per_mwh=Decimal(30))


def test_records_carry_the_interval_price_and_come_sorted_by_workload() -> None:
    runs = [run("w2", tier=Tier.INTERRUPTIBLE), run("w1")]
    # a simulator's float price is kept to 6 places, as storage keeps it
    records = meter_interval(runs, T0, T15, {}, rt_price_usd_per_mwh=41.50000049)
    assert [r.workload_id for r in records] == ["w1", "w2"]
    assert {r.rt_price_usd_per_mwh for r in records} == {Decimal("41.5")}


def test_interruptible_usage_without_a_price_is_refused() -> None:
    with pytest.raises(ValidationError, match="rt_price_usd_per_mwh"):
        meter_interval([run(tier=Tier.INTERRUPTIBLE)], T0, T15, {})


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (T15, T0, "interval_end"),
        (T0, T0, "interval_end"),
        (T0.replace(tzinfo=None), T15, "interval_start"),
    ],
)
def test_bad_intervals_are_refused(start: datetime, end: datetime, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        meter_interval([], start, end, {})
    assert raised.value.field == field


def test_bad_runs_and_samples_are_refused() -> None:
    with pytest.raises(ValidationError, match="gpu_ids"):
        run(gpu_ids=("g1", "g1"))
    with pytest.raises(ValidationError, match="stopped_at"):
        run(stopped_at=minutes(-1))
    with pytest.raises(ValidationError, match="power_w"):
        meter_interval([run()], T0, T15, {"g1": samples((0, -5))})
    with pytest.raises(ValidationError, match="gpu_family"):
        meter_interval([run()], T0, T15, {}, busy_power_kw={"A100": Decimal("0.4")})


def test_usage_records_refuse_what_storage_could_not_keep_exactly() -> None:
    with pytest.raises(ValidationError, match="6 decimal places"):
        UsageRecord(
            "w1", "c", TRAINING, "H100", Tier.STANDARD, T0, T15,
            gpu_hours=Decimal("0.1234567"), energy_kwh=Decimal(0),
        )  # fmt: skip


# --- conservation ----------------------------------------------------------------------------


@st.composite
def split_runs(draw: st.DrawFn) -> tuple[Run, list[datetime]]:
    """A run of 1-8 GPUs lasting up to 3 days (to the microsecond), and cuts around it."""
    duration = timedelta(microseconds=draw(st.integers(1, 3 * 86_400 * 10**6)))
    offset = timedelta(microseconds=draw(st.integers(0, 10**9)))
    gpus = tuple(f"g{i}" for i in range(draw(st.integers(1, 8))))
    started = T0 + offset
    inside = st.integers(1, 3 * 86_400 * 10**6 + 10**9)
    cuts = {T0 + timedelta(microseconds=m) for m in draw(st.lists(inside, max_size=30))}
    cuts |= {T0, started + duration + timedelta(hours=1)}
    return run(gpu_ids=gpus, started_at=started, stopped_at=started + duration), sorted(cuts)


@given(split_runs())
def test_a_run_split_across_intervals_bills_its_gpus_times_its_duration(
    case: tuple[Run, list[datetime]],
) -> None:
    the_run, cuts = case
    assert the_run.stopped_at is not None
    records = [
        record
        for start, end in pairwise(cuts)
        for record in meter_interval([the_run], start, end, {})
    ]
    duration = the_run.stopped_at - the_run.started_at
    gpu_microseconds = len(the_run.gpu_ids) * (duration // timedelta(microseconds=1))
    billed = sum((r.gpu_hours for r in records), Decimal(0))
    # Exactly GPUs × duration rounded once to a micro-GPU-hour (3,600 µs of one GPU) ...
    assert billed == micro_units(gpu_microseconds, 3_600)
    # ... so within half a micro-GPU-hour of the exact figure, however many cuts.
    assert abs(billed - Decimal(gpu_microseconds) / 3_600_000_000) <= QUANTITY_STEP / 2


@given(split_runs(), st.lists(st.tuples(st.integers(-60, 5000), st.integers(0, 1000)), min_size=1))
def test_telemetry_energy_is_conserved_across_splits_within_rounding(
    case: tuple[Run, list[datetime]], points: list[tuple[int, int]]
) -> None:
    the_run, cuts = case
    power = {gpu: samples(*[(float(m), float(w)) for m, w in points]) for gpu in the_run.gpu_ids}
    whole = meter_interval([the_run], cuts[0], cuts[-1], power)
    parts = [
        record
        for start, end in pairwise(cuts)
        for record in meter_interval([the_run], start, end, power)
    ]
    total = sum((r.energy_kwh for r in parts), Decimal(0))
    assert abs(total - whole[0].energy_kwh) <= QUANTITY_STEP / 2 * (len(parts) + 1)


def test_the_callers_decimal_context_does_not_change_metering() -> None:
    power = {"g1": samples((0, 512.3), (7, 611.9))}
    expected = meter_interval([run(gpu_ids=("g1", "g2"))], T0, T15, power)
    with localcontext(prec=3, rounding=ROUND_DOWN):
        assert meter_interval([run(gpu_ids=("g1", "g2"))], T0, T15, power) == expected


@given(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=120)),
)
def test_month_pieces_cover_the_interval_and_none_runs_into_another_month(
    start: datetime, length: timedelta
) -> None:
    end = start + length
    pieces = month_pieces(start, end)
    assert pieces[0][0] == start and pieces[-1][1] == end
    assert all(a[1] == b[0] for a, b in pairwise(pieces))
    for piece_start, piece_end in pieces:
        last = piece_end - timedelta(microseconds=1)
        assert (piece_start.year, piece_start.month) == (last.year, last.month)


def test_month_pieces_cut_at_midnight_utc_of_the_first() -> None:
    start = datetime(2025, 6, 30, 23, 57, 30, tzinfo=UTC)
    july = datetime(2025, 7, 1, tzinfo=UTC)
    assert month_pieces(start, start + timedelta(minutes=5)) == [
        (start, july),
        (july, july + timedelta(minutes=2, seconds=30)),
    ]


def test_month_pieces_also_cut_at_the_instants_given_inside_the_interval() -> None:
    """Price changes: one at the start, one inside, one at the end and one after it."""
    given = [T0, minutes(2), minutes(5), minutes(9), minutes(2)]
    assert month_pieces(T0, minutes(5), given) == [(T0, minutes(2)), (minutes(2), minutes(5))]
