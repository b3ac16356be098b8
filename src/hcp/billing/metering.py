"""Metering: what each workload used in one interval, in GPU-hours and kWh.

GPU-hours. A run's GPU-hours from its start to an instant t are H(t) = GPUs × (t − start), and
an interval is billed round(H(end)) − round(H(start)) (rounded to 0.000001 GPU-hour, half up, in
integer arithmetic). The roundings telescope: the records of a run split across consecutive
intervals add up to its GPUs × duration rounded once, however the intervals cut it.

Energy. Board energy of the run's GPUs (without PUE) over the part of the interval it ran,
integrated from telemetry by step-hold: each power sample holds until the next one, and the
time before a GPU's first sample takes that sample's value. Step-hold never invents a reading
between two samples, and being one function of time it is additive: metering an interval whole
or in pieces from the same samples gives the same joules. A sample taken before the interval
carries its power into it, so callers pass the interval's samples plus the last one before it.
A GPU with no samples at all is estimated at its family's busy power (the catalog flagship's
TDP) × time, and the record says `energy_source = estimated`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from hcp.billing.prices import Tier, catalog_gpu_power_kw
from hcp.billing.rounding import (
    MAX_QUANTITY,
    exact_arithmetic,
    micro_units,
    round_quantity,
    to_decimal,
)
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass

JOULES_PER_KWH = Decimal(3_600_000)
MICROSECONDS_PER_MICRO_HOUR = 3_600
WATTS_PER_KW = Decimal(1000)


class EnergySource(StrEnum):
    """Where a record's kWh come from: measured for every GPU, or estimated for at least one."""

    TELEMETRY = "telemetry"
    ESTIMATED = "estimated"


@dataclass(frozen=True, slots=True)
class Run:
    """One stretch of a workload on fixed GPUs: from `started_at` to `stopped_at` (None: still
    running). A workload preempted and restarted has one run per stretch."""

    workload_id: str
    customer_id: str
    workload_class: WorkloadClass
    gpu_family: str
    gpu_ids: tuple[str, ...]
    started_at: datetime
    stopped_at: datetime | None = None
    tier: Tier = Tier.STANDARD

    def __post_init__(self) -> None:
        if not self.gpu_ids or len(set(self.gpu_ids)) != len(self.gpu_ids):
            raise ValidationError("gpu_ids", f"run of {self.workload_id} needs distinct GPU ids")
        _check_aware("started_at", self.started_at)
        if self.stopped_at is not None:
            _check_aware("stopped_at", self.stopped_at)
            if self.stopped_at < self.started_at:
                raise ValidationError("stopped_at", f"run of {self.workload_id} stops before start")


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One telemetry reading of a GPU's board power in W at `at`."""

    at: datetime
    power_w: float

    def __post_init__(self) -> None:
        _check_aware("at", self.at)


class Measured(NamedTuple):
    """What one run used in its span of an interval."""

    gpu_hours: Decimal
    energy_kwh: Decimal
    source: EnergySource


class Interval(NamedTuple):
    """The interval being metered and its real-time electricity price in USD/MWh."""

    start: datetime
    end: datetime
    rt_price_usd_per_mwh: Decimal | None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one workload used in one interval [interval_start, interval_end): GPU-hours and kWh
    (both to 6 decimal places), its tier, and the interval's real-time electricity price in
    USD/MWh (required for the interruptible tier, which is priced off it)."""

    workload_id: str
    customer_id: str
    workload_class: WorkloadClass
    gpu_family: str
    tier: Tier
    interval_start: datetime
    interval_end: datetime
    gpu_hours: Decimal
    energy_kwh: Decimal
    rt_price_usd_per_mwh: Decimal | None = None
    energy_source: EnergySource = EnergySource.TELEMETRY

    def __post_init__(self) -> None:
        _check_interval(self.interval_start, self.interval_end)
        _check_quantity("gpu_hours", self.gpu_hours)
        _check_quantity("energy_kwh", self.energy_kwh)
        if self.rt_price_usd_per_mwh is not None:
            _check_quantity("rt_price_usd_per_mwh", abs(self.rt_price_usd_per_mwh))
        elif self.tier is Tier.INTERRUPTIBLE:
            message = f"interruptible usage of {self.workload_id} needs the interval's price"
            raise ValidationError("rt_price_usd_per_mwh", message)

    @property
    def key(self) -> tuple[str, datetime]:
        """What makes a record unique: a workload is billed at most once per interval."""
        return (self.workload_id, self.interval_start)


def month_pieces(
    start: datetime, end: datetime, also_at: Iterable[datetime] = ()
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at each UTC month start inside it, and at each instant of `also_at`
    inside it: an invoice takes a usage record whole into the month it starts in, priced at
    the sheet in force at its start, so no record may run into the next month or past a
    price change (pass the instants prices changed at as `also_at`)."""
    cuts = sorted({at for at in also_at if start < at < end})
    pieces: list[tuple[datetime, datetime]] = []
    while start < end:
        utc = start.astimezone(UTC)
        following = (utc.replace(day=28) + timedelta(days=4)).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        cut = min([end, following, *(at for at in cuts if at > start)])
        pieces.append((start, cut))
        start = cut
    return pieces


def meter_interval(
    runs: Iterable[Run],
    interval_start: datetime,
    interval_end: datetime,
    power_samples: Mapping[str, Sequence[PowerSample]],
    *,
    rt_price_usd_per_mwh: Decimal | float | None = None,
    busy_power_kw: Mapping[str, Decimal] | None = None,
) -> list[UsageRecord]:
    """One usage record per workload that ran in [interval_start, interval_end), sorted by
    workload id. Runs are clipped to the interval; two runs of one workload in it make one
    record. `power_samples` maps GPU ids to their readings; `busy_power_kw` maps GPU families
    to the power assumed for a GPU without readings (default: the catalog flagships')."""
    _check_interval(interval_start, interval_end)
    interval = Interval(interval_start, interval_end, _optional_price(rt_price_usd_per_mwh))
    busy = catalog_gpu_power_kw() if busy_power_kw is None else busy_power_kw
    records: dict[str, UsageRecord] = {}
    with exact_arithmetic():
        for run in runs:
            span = _clip(run, interval_start, interval_end)
            if span is not None:
                record = _record(run, interval, _measure(run, span, power_samples, busy))
                records[run.workload_id] = _merge(records.get(run.workload_id), record)
    return [records[workload_id] for workload_id in sorted(records)]


def gpu_hours_between(run: Run, start: datetime, end: datetime) -> Decimal:
    """GPU-hours of `run` in [start, end] (inside the run), rounded so they telescope:
    round(H(end)) − round(H(start)) with H(t) = GPUs × (t − started_at) in micro-GPU-hours."""
    gpus = len(run.gpu_ids)
    since_start = gpus * _microseconds(start - run.started_at)
    since_end = gpus * _microseconds(end - run.started_at)
    step = MICROSECONDS_PER_MICRO_HOUR
    return micro_units(since_end, step) - micro_units(since_start, step)


def held_energy_j(samples: Sequence[PowerSample], start: datetime, end: datetime) -> Decimal | None:
    """Energy in J over [start, end) by step-hold: the power at t is the latest sample at or
    before t, or the earliest sample when none is that early; None without samples."""
    known = sorted(samples, key=lambda s: (s.at, s.power_w))
    if not known:
        return None
    before = [s for s in known if s.at <= start]
    level = _watts(before[-1] if before else known[0])
    cursor, energy = start, Decimal(0)
    with exact_arithmetic():
        for sample in known:
            if start < sample.at < end:
                energy += level * _seconds(sample.at - cursor)
                cursor, level = sample.at, _watts(sample)
        return energy + level * _seconds(end - cursor)


def _measure(
    run: Run,
    span: tuple[datetime, datetime],
    power_samples: Mapping[str, Sequence[PowerSample]],
    busy_power_kw: Mapping[str, Decimal],
) -> Measured:
    start, end = span
    energy_j, source = Decimal(0), EnergySource.TELEMETRY
    for gpu_id in run.gpu_ids:
        measured = held_energy_j(power_samples.get(gpu_id, ()), start, end)
        if measured is None:
            measured = _busy_watts(run, busy_power_kw) * _seconds(end - start)
            source = EnergySource.ESTIMATED
        energy_j += measured
    energy_kwh = round_quantity(energy_j / JOULES_PER_KWH)
    return Measured(gpu_hours_between(run, start, end), energy_kwh, source)


def _record(run: Run, interval: Interval, measured: Measured) -> UsageRecord:
    return UsageRecord(
        workload_id=run.workload_id,
        customer_id=run.customer_id,
        workload_class=run.workload_class,
        gpu_family=run.gpu_family,
        tier=run.tier,
        interval_start=interval.start,
        interval_end=interval.end,
        gpu_hours=measured.gpu_hours,
        energy_kwh=measured.energy_kwh,
        rt_price_usd_per_mwh=interval.rt_price_usd_per_mwh,
        energy_source=measured.source,
    )


def _merge(earlier: UsageRecord | None, record: UsageRecord) -> UsageRecord:
    """One record for two runs of a workload in the same interval; they must agree on what
    is being bought (customer, class, family, tier), or the interval cannot be billed."""
    if earlier is None:
        return record
    what = ("customer_id", "workload_class", "gpu_family", "tier")
    if any(getattr(earlier, name) != getattr(record, name) for name in what):
        message = f"runs of {record.workload_id} in one interval differ in {', '.join(what)}"
        raise ValidationError("runs", message)
    estimated = EnergySource.ESTIMATED in (earlier.energy_source, record.energy_source)
    return replace(
        record,
        gpu_hours=earlier.gpu_hours + record.gpu_hours,
        energy_kwh=earlier.energy_kwh + record.energy_kwh,
        energy_source=EnergySource.ESTIMATED if estimated else EnergySource.TELEMETRY,
    )


def _clip(run: Run, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The part of `run` inside [start, end); None when they do not overlap."""
    begin = max(run.started_at, start)
    finish = end if run.stopped_at is None else min(run.stopped_at, end)
    return (begin, finish) if begin < finish else None


def _busy_watts(run: Run, busy_power_kw: Mapping[str, Decimal]) -> Decimal:
    if run.gpu_family not in busy_power_kw:
        known = ", ".join(sorted(busy_power_kw))
        message = f"no busy power for {run.gpu_family!r} to estimate energy (known: {known})"
        raise ValidationError("gpu_family", message)
    return busy_power_kw[run.gpu_family] * WATTS_PER_KW


def _optional_price(price: Decimal | float | None) -> Decimal | None:
    """The interval's price to 6 places, as storage keeps it (a simulator's float has more)."""
    return None if price is None else round_quantity(to_decimal(price, "rt_price_usd_per_mwh"))


def _watts(sample: PowerSample) -> Decimal:
    power = to_decimal(sample.power_w, "power_w")
    if power < 0:
        raise ValidationError("power_w", f"negative power {power} W at {sample.at.isoformat()}")
    return power


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(_microseconds(delta)).scaleb(-6)


def _check_quantity(field: str, quantity: Decimal) -> None:
    """In [0, 10^12) with at most 6 places: what storage keeps exactly (Numeric(18, 6)), so a
    stored record bills the same as the one metered (prices are checked by magnitude)."""
    if not quantity.is_finite() or not 0 <= quantity < MAX_QUANTITY:
        raise ValidationError(field, f"must be a quantity in [0, 10^12), got {quantity}")
    if quantity != round_quantity(quantity):
        raise ValidationError(field, f"has more than 6 decimal places: {quantity}")


def _check_aware(field: str, at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError(field, f"must be timezone-aware, got {at.isoformat()}")


def _check_interval(start: datetime, end: datetime) -> None:
    _check_aware("interval_start", start)
    _check_aware("interval_end", end)
    if end <= start:
        raise ValidationError("interval_end", "must be after interval_start")
