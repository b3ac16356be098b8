"""CSV exports of usage and invoices: a header row, ISO 8601 UTC times, plain decimal strings.

Decimals are written at their billing precision (quantities 6 places, unit prices 4, amounts
2), never in exponent form, so an export is byte-for-byte the same whether the records came
from memory or from storage (which returns `1.500000` for `1.5`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from hcp.billing.invoicing import Invoice
from hcp.billing.metering import UsageRecord
from hcp.billing.rounding import round_money, round_price, round_quantity

USAGE_COLUMNS = (
    "workload_id",
    "customer_id",
    "workload_class",
    "gpu_family",
    "tier",
    "interval_start",
    "interval_end",
    "gpu_hours",
    "energy_kwh",
    "energy_source",
    "rt_price_usd_per_mwh",
)
INVOICE_COLUMNS = (
    "invoice_id",
    "customer_id",
    "month",
    "description",
    "quantity",
    "unit",
    "unit_price_usd",
    "amount_usd",
)


def usage_csv(records: Iterable[UsageRecord]) -> str:
    """`records` as CSV, one row each, ordered by interval start then workload id."""
    ordered = sorted(records, key=lambda r: (r.interval_start, r.workload_id))
    return _table(USAGE_COLUMNS, [_usage_row(record) for record in ordered])


def invoice_csv(invoice: Invoice) -> str:
    """`invoice` as CSV, one row per line; the total is the sum of the `amount_usd` column. A
    line billing late usage says so in its description ("late usage from 2025-06: ...")."""
    head = [invoice.id, invoice.customer_id, invoice.month]
    rows = [
        [
            *head,
            line.description,
            _plain(round_quantity(line.quantity)),
            line.unit,
            _plain(round_price(line.unit_price)),
            _plain(round_money(line.amount)),
        ]
        for line in invoice.lines
    ]
    return _table(INVOICE_COLUMNS, rows)


def _usage_row(record: UsageRecord) -> list[str]:
    rt = record.rt_price_usd_per_mwh
    return [
        record.workload_id,
        record.customer_id,
        record.workload_class.value,
        record.gpu_family,
        record.tier.value,
        _iso(record.interval_start),
        _iso(record.interval_end),
        _plain(round_quantity(record.gpu_hours)),
        _plain(round_quantity(record.energy_kwh)),
        record.energy_source.value,
        "" if rt is None else _plain(round_quantity(rt)),
    ]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _plain(value: Decimal) -> str:
    """`value` in positional notation (never 1E+2)."""
    return format(value, "f")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
