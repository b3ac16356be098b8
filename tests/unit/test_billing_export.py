"""CSV exports: header, ISO UTC times, plain decimals at billing precision, stable bytes."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hcp.billing.export import INVOICE_COLUMNS, USAGE_COLUMNS, invoice_csv, usage_csv
from hcp.billing.invoicing import build_invoice
from hcp.billing.metering import EnergySource, UsageRecord
from hcp.billing.prices import DEFAULT_BILLING_SHEET, Tier
from hcp.domain.workloads import WorkloadClass

START = datetime(2025, 6, 30, 23, 45, tzinfo=UTC)
END = START + timedelta(minutes=15)


def record(workload_id: str = "w1", gpu_hours: str = "1.5", **changes: Any) -> UsageRecord:
    base = UsageRecord(
        workload_id, "cust-001", WorkloadClass.AI_TRAINING, "H100", Tier.INTERRUPTIBLE,
        START, END, Decimal(gpu_hours), Decimal("1E-6"), Decimal("1E+2"),
        EnergySource.ESTIMATED,
    )  # fmt: skip
    return replace(base, **changes)


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_usage_csv_has_a_header_iso_times_and_plain_decimals() -> None:
    standard = record("w0", tier=Tier.STANDARD, rt_price_usd_per_mwh=None)
    assert rows(usage_csv([record(), standard])) == [
        list(USAGE_COLUMNS),
        [
            "w0", "cust-001", "ai_training", "H100", "standard",
            "2025-06-30T23:45:00+00:00", "2025-07-01T00:00:00+00:00",
            "1.500000", "0.000001", "estimated", "",
        ],
        [
            "w1", "cust-001", "ai_training", "H100", "interruptible",
            "2025-06-30T23:45:00+00:00", "2025-07-01T00:00:00+00:00",
            "1.500000", "0.000001", "estimated", "100.000000",
        ],
    ]  # fmt: skip


def test_usage_csv_writes_times_in_utc_whatever_the_input_zone() -> None:
    elsewhere = timezone(timedelta(hours=-5))
    shifted = record(interval_start=START.astimezone(elsewhere))
    assert usage_csv([shifted]) == usage_csv([record()])


def test_usage_csv_is_the_same_for_equal_values_written_differently() -> None:
    # storage gives back 1.500000 for 1.5: the export must not change
    assert usage_csv([record(gpu_hours="1.500000")]) == usage_csv([record(gpu_hours="1.5")])


def test_usage_csv_of_nothing_is_its_header() -> None:
    assert rows(usage_csv([])) == [list(USAGE_COLUMNS)]


def test_invoice_csv_has_one_row_per_line_summing_to_the_total() -> None:
    # interruptible H100 training at rt $100: 2.25 × 0.5 + 0.7 × 1.2 × 0.1 × 1.25 = 1.23
    # × 1.5 GPU-h = $1.845 -> $1.85
    invoice = build_invoice("cust-001", "2025-06", [record()], DEFAULT_BILLING_SHEET)
    table = rows(invoice_csv(invoice))
    assert table == [
        list(INVOICE_COLUMNS),
        [
            "inv-2025-06-cust-001", "cust-001", "2025-06",
            "H100 GPU-hours, training, interruptible",
            "1.500000", "GPU-hour", "1.2300", "1.85",
        ],
    ]  # fmt: skip
    assert sum(Decimal(row[-1]) for row in table[1:]) == invoice.total


def test_invoice_csv_is_reproducible() -> None:
    usage = [record(), record("w2", gpu_hours="0.25")]
    first = build_invoice("cust-001", "2025-06", usage, DEFAULT_BILLING_SHEET)
    again = build_invoice("cust-001", "2025-06", usage[::-1], DEFAULT_BILLING_SHEET)
    assert invoice_csv(first) == invoice_csv(again)
    assert re.search(r"[0-9][eE][+-]?[0-9]", invoice_csv(first)) is None


def test_invoice_csv_labels_late_usage_lines_with_the_month_they_ran_in() -> None:
    july = record("w1", interval_start=END, interval_end=END + timedelta(minutes=15))
    late = record("w2")  # 23:45 on June 30th, metered after June's final invoice
    invoice = build_invoice("cust-001", "2025-07", [july], DEFAULT_BILLING_SHEET, None, [late])
    descriptions = [row[3] for row in rows(invoice_csv(invoice))[1:]]
    assert descriptions == [
        "H100 GPU-hours, training, interruptible",
        "late usage from 2025-06: H100 GPU-hours, training, interruptible",
    ]
