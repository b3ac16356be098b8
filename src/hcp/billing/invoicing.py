"""Monthly invoices: one per customer and month, built from usage records alone.

An invoice is a pure function of (customer, month, usage, price sheet), so building it twice
gives the same invoice, and records seen twice are billed once. Each line is one (class, GPU
family, tier) group, a standard one per list price it ran at; its amount is the exact sum of
GPU-hours × unit price over its records, rounded once to cents (ROUND_HALF_UP, see
`rounding`). The total is the sum of the line amounts, so it equals the sum of usage × price
to within half a cent per line.

An invoice issued once its month has ended is final: it is never rebuilt or changed. Usage of
its month metered after it (a meter that was behind, a run vouched for late) is late usage:
the customer's next invoice built bills it, on lines of its own labelled with the month it ran
in ("late usage from 2025-06: ..."), priced as it would have been in that month.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal

from hcp.billing.metering import UsageRecord
from hcp.billing.prices import BillingPriceSheet, PriceHistory, Tier
from hcp.billing.rounding import exact_arithmetic, round_money, round_price, round_quantity
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass

GPU_HOUR = "GPU-hour"
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_CLASS_LABELS = {
    WorkloadClass.AI_INFERENCE_REALTIME: "realtime inference",
    WorkloadClass.AI_INFERENCE_BATCH: "batch inference",
    WorkloadClass.AI_TRAINING: "training",
}

LineKey = tuple[str, WorkloadClass, str, Tier, Decimal | None, Decimal | None]
"""The month of late usage ("" for the invoice's own), class, GPU family, tier, the workload's
max price where it capped the price, and the list price of standard usage it did not cap (a
price change mid-month makes a line of its own)."""


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line: `quantity` `unit`s at `unit_price` USD each, `amount` USD in cents.

    On a standard line amount = round(quantity × unit_price). On an interruptible line the
    price changes every interval: the amount is the rounded sum over its intervals, and
    unit_price is their GPU-hour-weighted average (to 0.0001), shown for reading only. Usage
    billed at a workload's max price (below the price in force), and standard usage at each
    list price in force during the month, have lines of their own.

    A line billing late usage (see the module) names the earlier month it ran in,
    `late_usage_month`; None on the lines of the invoice's own month.
    """

    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    late_usage_month: str | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    """A customer's invoice for one month ("YYYY-MM", UTC), its lines and total in USD, and
    when it was issued (None: built, not yet stored). One issued before its month ended is
    provisional (`final` False): the month's usage may still grow, and issuing it again
    after the month replaces it with the final one. A final invoice is never changed: usage
    of its month metered after it is billed on a later invoice as late usage."""

    id: str
    customer_id: str
    month: str
    lines: tuple[InvoiceLine, ...]
    total: Decimal
    issued_at: datetime | None = field(default=None, compare=False)  # the content is the invoice

    @property
    def final(self) -> bool:
        """Whether it was issued once its month had ended."""
        return is_final(self.month, self.issued_at)


@dataclass(slots=True)
class _Group:
    """A line being summed: GPU-hours, their exact charge in USD, the unit prices seen."""

    quantity: Decimal
    charge: Decimal
    prices: set[Decimal]


def parse_month(month: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of `month` ("YYYY-MM"); ValidationError("month") otherwise."""
    match = _MONTH.fullmatch(month)
    if match is None:
        raise ValidationError("month", f"expected YYYY-MM (e.g. 2025-06), got {month!r}")
    year, number = int(match[1]), int(match[2])
    if not 2 <= year <= 9998:  # both neighbours of a month must exist
        raise ValidationError("month", f"year {year} is out of range")
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def is_final(month: str, issued_at: datetime | None) -> bool:
    """Whether an invoice for `month` issued at `issued_at` (None: not yet) is final: issued
    once the month had ended."""
    return issued_at is not None and issued_at >= parse_month(month)[1]


def month_of(at: datetime) -> str:
    """The UTC month ("YYYY-MM") the instant `at` falls in."""
    utc = at.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def invoice_id(customer_id: str, month: str) -> str:
    """The id of `customer_id`'s invoice for `month`, e.g. "inv-2025-06-cust-001"."""
    parse_month(month)
    if not customer_id:
        raise ValidationError("customer_id", "must not be empty")
    return f"inv-{month}-{customer_id}"


def deduplicate(usage: Iterable[UsageRecord]) -> list[UsageRecord]:
    """`usage` with each (workload, interval start) once, in first-seen order. Two records with
    the same key but any other difference raise ValidationError naming the key: which one is
    right cannot be known here, so neither is billed."""
    unique: dict[tuple[str, datetime], UsageRecord] = {}
    for record in usage:
        seen = unique.setdefault(record.key, record)
        if seen != record:
            at = record.interval_start.isoformat()
            message = f"workload {record.workload_id} has two different records at {at}"
            raise ValidationError("usage", message)
    return list(unique.values())


def build_invoice(
    customer_id: str,
    month: str,
    usage: Iterable[UsageRecord],
    sheet: BillingPriceSheet | PriceHistory,
    max_prices: Mapping[str, Decimal] | None = None,
    late_usage: Iterable[UsageRecord] = (),
) -> Invoice:
    """`customer_id`'s invoice for `month` from `usage`: its records whose interval starts in
    the month (UTC), each billed once (see `deduplicate`, applied to all of `usage` first),
    one line per (class, family, tier) in class priority, family, standard-first order.

    A workload in `max_prices` (its id: the most its customer agreed to pay per GPU-hour) is
    billed at most that: an interruptible GPU-hour's price rises with the real-time price, and
    an admin may raise a list price after the workload was accepted. With a `PriceHistory`
    each record is priced at the sheet in force when its interval began.

    `late_usage` is the customer's usage of earlier months that their final invoices do not
    bill (records of this month or later in it are left out): it is billed after the month's
    own lines, one line per month it ran in and (class, family, tier), each labelled
    "late usage from YYYY-MM: ...", priced and capped as the usage of that month is."""
    identity = invoice_id(customer_id, month)
    start, end = parse_month(month)
    own, late = deduplicate(usage), deduplicate(late_usage)
    deduplicate([*own, *late])  # a record given as both must be the same record
    caps = max_prices or {}
    groups: dict[LineKey, _Group] = {}
    with exact_arithmetic():
        for record in own:
            if record.customer_id == customer_id and start <= record.interval_start < end:
                _add(groups, "", record, _in_force(sheet, record), caps.get(record.workload_id))
        for record in late:
            if record.customer_id == customer_id and record.interval_start < start:
                ran_in = month_of(record.interval_start)
                _add(groups, ran_in, record, _in_force(sheet, record), caps.get(record.workload_id))
        lines = tuple(_line(key, groups[key]) for key in sorted(groups, key=_line_order))
        total = sum((line.amount for line in lines), Decimal("0.00"))
    return Invoice(identity, customer_id, month, lines, total)


def _in_force(sheet: BillingPriceSheet | PriceHistory, record: UsageRecord) -> BillingPriceSheet:
    """The sheet `record` is priced at: the one in force when its interval began."""
    return sheet.at(record.interval_start) if isinstance(sheet, PriceHistory) else sheet


def _add(
    groups: dict[LineKey, _Group],
    late_from: str,
    record: UsageRecord,
    sheet: BillingPriceSheet,
    max_price: Decimal | None,
) -> None:
    price = sheet.gpu_hour_price(
        record.workload_class, record.gpu_family, record.tier, record.rt_price_usd_per_mwh
    )
    cap = None
    if max_price is not None:
        # To 0.0001 USD like every price, rounded down: never above what was agreed.
        cap = max_price.quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
        if cap < price:
            price = cap
        else:
            cap = None
    listed = price if cap is None and record.tier is Tier.STANDARD else None
    key = (late_from, record.workload_class, record.gpu_family, record.tier, cap, listed)
    group = groups.setdefault(key, _Group(Decimal(0), Decimal(0), set()))
    group.quantity += record.gpu_hours
    group.charge += record.gpu_hours * price
    group.prices.add(price)


def _line(key: LineKey, group: _Group) -> InvoiceLine:
    late_from, workload_class, family, tier, cap, _ = key
    description = f"{family} GPU-hours, {_CLASS_LABELS[workload_class]}, {tier.value}"
    if cap is not None:
        description += f", at the workload's max price {cap}"
    if late_from:
        description = f"late usage from {late_from}: {description}"
    quantity = round_quantity(group.quantity)
    amount = round_money(group.charge)
    return InvoiceLine(
        description, quantity, GPU_HOUR, _unit_price(group), amount, late_from or None
    )


def _unit_price(group: _Group) -> Decimal:
    """The one price of the group's records, else their GPU-hour-weighted average."""
    if len(group.prices) == 1:
        return round_price(next(iter(group.prices)))
    if group.quantity == 0:
        return round_price(min(group.prices))
    return round_price(group.charge / group.quantity)


def _line_order(key: LineKey) -> tuple[str, int, str, bool, bool, Decimal, Decimal]:
    """The month's own lines first ("" sorts first), then late usage, oldest month first."""
    late_from, workload_class, family, tier, cap, listed = key
    capped = cap is not None
    standard = tier is Tier.STANDARD
    zero = Decimal(0)
    priority = workload_class.priority
    return (late_from, priority, family, not standard, capped, cap or zero, listed or zero)
