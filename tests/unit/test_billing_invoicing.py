"""Invoices: a hand-worked month, month boundaries, bad months, duplicates billed once, and the
invariants over random usage: total = sum of lines = sum of usage × price (to half a cent per
line), and building twice, or from duplicated and shuffled usage, gives the same invoice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.billing.invoicing import (
    Invoice,
    InvoiceLine,
    build_invoice,
    deduplicate,
    invoice_id,
    is_final,
    month_of,
    parse_month,
)
from hcp.billing.metering import UsageRecord
from hcp.billing.prices import DEFAULT_BILLING_SHEET, Tier
from hcp.billing.rounding import round_money
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass

REALTIME = WorkloadClass.AI_INFERENCE_REALTIME
BATCH = WorkloadClass.AI_INFERENCE_BATCH
TRAINING = WorkloadClass.AI_TRAINING
QUARTER = timedelta(minutes=15)
CHICAGO_SUMMER = timezone(timedelta(hours=-5))
SHEET = DEFAULT_BILLING_SHEET


def usage(
    workload_id: str,
    start: datetime,
    gpu_hours: str,
    workload_class: WorkloadClass = REALTIME,
    family: str = "H100",
    tier: Tier = Tier.STANDARD,
    rt: str | None = None,
    customer_id: str = "cust-001",
) -> UsageRecord:
    return UsageRecord(
        workload_id,
        customer_id,
        workload_class,
        family,
        tier,
        start,
        start + QUARTER,
        Decimal(gpu_hours),
        Decimal("0.1"),
        None if rt is None else Decimal(rt),
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- a hand-worked month ---------------------------------------------------------------------


def test_a_hand_worked_invoice() -> None:
    june_start = usage("w1", at("2025-06-01T00:00Z"), "0.5")
    records = [
        june_start,
        # 23:45-00:00 starts in June, so it is June's: 0.5 + 0.25 = 0.75 GPU-h × $4.00 = $3.00
        usage("w1", at("2025-06-30T23:45Z"), "0.25"),
        # interruptible A100 training, list $1.20, 0.4 kW:
        # rt $40: 1.2 × 0.5 + 0.4 × 1.2 × 40 / 1000 × 1.25 = 0.6 + 0.024 = $0.624 × 1 GPU-h
        usage("w2", at("2025-06-10T12:00Z"), "1", TRAINING, "A100", Tier.INTERRUPTIBLE, "40"),
        # rt −$10: $0.60 × 2 GPU-h = $1.20; line 0.624 + 1.2 = $1.824 -> $1.82 for 3 GPU-h,
        # average price 1.824 / 3 = $0.608
        usage("w2", at("2025-06-10T12:15Z"), "2", TRAINING, "A100", Tier.INTERRUPTIBLE, "-10"),
        # batch L40S at $1.10: 0.333333 × 1.1 = 0.3666663 -> $0.37
        usage("w3", at("2025-06-15T08:00Z"), "0.333333", BATCH, "L40S"),
        june_start,  # seen twice, billed once
        usage("w9", at("2025-06-02T00:00Z"), "7", customer_id="cust-002"),  # someone else's
        usage("w1", at("2025-07-01T00:00Z"), "9"),  # July's
    ]
    invoice = build_invoice("cust-001", "2025-06", records, SHEET)
    assert invoice == Invoice(
        id="inv-2025-06-cust-001",
        customer_id="cust-001",
        month="2025-06",
        lines=(
            InvoiceLine(
                "H100 GPU-hours, realtime inference, standard",
                Decimal("0.75"), "GPU-hour", Decimal("4.00"), Decimal("3.00"),
            ),
            InvoiceLine(
                "L40S GPU-hours, batch inference, standard",
                Decimal("0.333333"), "GPU-hour", Decimal("1.10"), Decimal("0.37"),
            ),
            InvoiceLine(
                "A100 GPU-hours, training, interruptible",
                Decimal("3"), "GPU-hour", Decimal("0.608"), Decimal("1.82"),
            ),
        ),
        total=Decimal("5.19"),  # 3.00 + 0.37 + 1.82
    )  # fmt: skip
    assert [str(line.amount) for line in invoice.lines] == ["3.00", "0.37", "1.82"]
    assert str(invoice.lines[2].unit_price) == "0.6080"
    assert str(invoice.total) == "5.19"


def test_a_workload_is_billed_at_most_its_max_price() -> None:
    """Interruptible H100 batch (list 2.75): at rt $2,000/MWh its price is the list price, but
    its customer capped it at 2.00; at rt $40 it is 1.417, under the cap. A workload without a
    cap (w2) pays the list price."""
    records = [
        usage("w1", at("2025-06-10T12:00Z"), "1", BATCH, tier=Tier.INTERRUPTIBLE, rt="2000"),
        usage("w1", at("2025-06-10T12:15Z"), "1", BATCH, tier=Tier.INTERRUPTIBLE, rt="40"),
        usage("w2", at("2025-06-10T12:00Z"), "1", BATCH, tier=Tier.INTERRUPTIBLE, rt="2000"),
    ]
    capped = build_invoice("cust-001", "2025-06", records, SHEET, {"w1": Decimal("2.00")})
    assert [(line.description, line.amount) for line in capped.lines] == [
        ("H100 GPU-hours, batch inference, interruptible", Decimal("4.17")),  # 1.417 + 2.75
        (
            "H100 GPU-hours, batch inference, interruptible, at the workload's max price 2.0000",
            Decimal("2.00"),
        ),
    ]
    assert capped.total == Decimal("6.17")
    uncapped = build_invoice("cust-001", "2025-06", records, SHEET)
    assert uncapped.lines[0].amount == Decimal("6.92")  # 2.75 + 1.417 + 2.75 = 6.917


def test_a_max_price_finer_than_a_price_is_rounded_down_never_above_it() -> None:
    records = [usage("w1", at("2025-06-10T12:00Z"), "1000", BATCH)]  # standard, list 2.75
    [line] = build_invoice("cust-001", "2025-06", records, SHEET, {"w1": Decimal("1.37505")}).lines
    assert line.unit_price == Decimal("1.3750") and line.amount == Decimal("1375.00")


def test_a_standard_line_stays_quantity_times_unit_price_when_some_usage_is_capped() -> None:
    """An admin raised a list price after a workload capped at the old one was accepted: its
    usage has a line of its own, and each line is quantity x unit price."""
    raised = replace(
        SHEET,
        usd_per_gpu_hour={**SHEET.usd_per_gpu_hour, BATCH: {"H100": Decimal("3.00")}},
    )
    records = [
        usage("capped", at("2025-06-10T12:00Z"), "100", BATCH),
        usage("new", at("2025-06-10T12:00Z"), "200", BATCH),
    ]
    invoice = build_invoice("cust-001", "2025-06", records, raised, {"capped": Decimal("2.75")})
    assert [(line.quantity, line.unit_price) for line in invoice.lines] == [
        (Decimal("200"), Decimal("3.0000")),
        (Decimal("100"), Decimal("2.7500")),
    ]
    for line in invoice.lines:
        assert line.amount == round_money(line.quantity * line.unit_price)


def test_a_standard_line_stays_quantity_times_unit_price_across_a_price_change() -> None:
    """The batch H100 list price rose from 2.75 to 5.00 on the 15th: one line at their
    GPU-hour-weighted average said 1,001 x 2.7522 = 2,754.95 and billed 2,755.00."""
    from hcp.billing.prices import PriceHistory

    history = PriceHistory(SHEET, [(at("2025-06-15T00:00Z"), BATCH, "H100", Decimal("5.0000"))])
    records = [
        usage("w1", at("2025-06-10T12:00Z"), "1000", BATCH),
        usage("w1", at("2025-06-20T12:00Z"), "1", BATCH),
    ]
    invoice = build_invoice("cust-001", "2025-06", records, history)
    assert [(line.quantity, line.unit_price) for line in invoice.lines] == [
        (Decimal("1000"), Decimal("2.7500")),
        (Decimal("1"), Decimal("5.0000")),
    ]
    for line in invoice.lines:
        assert line.amount == round_money(line.quantity * line.unit_price)
    assert invoice.total == Decimal("2755.00")


def test_a_month_without_usage_has_no_lines_and_a_zero_total() -> None:
    invoice = build_invoice("cust-001", "2025-06", [], SHEET)
    assert invoice.lines == ()
    assert str(invoice.total) == "0.00"


# --- months ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "month"),
    [
        (at("2025-06-30T23:45Z"), "2025-06"),
        (at("2025-07-01T00:00Z"), "2025-07"),
        (at("2025-06-01T00:00Z"), "2025-06"),
        (at("2025-05-31T23:59:59.999999Z"), "2025-05"),
        # 01:30 in UTC+2 on July 1st is 23:30 UTC on June 30th
        (datetime(2025, 7, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), "2025-06"),
    ],
)
def test_a_record_belongs_to_the_utc_month_its_interval_starts_in(
    start: datetime, month: str
) -> None:
    record = usage("w1", start, "1")
    for candidate in ("2025-05", "2025-06", "2025-07"):
        billed = build_invoice("cust-001", candidate, [record], SHEET).total
        assert (billed > 0) == (candidate == month), candidate


def test_parse_month_gives_utc_bounds_and_handles_december() -> None:
    assert parse_month("2025-06") == (at("2025-06-01T00:00Z"), at("2025-07-01T00:00Z"))
    assert parse_month("2025-12") == (at("2025-12-01T00:00Z"), at("2026-01-01T00:00Z"))


BAD_MONTHS = ["2025-13", "2025-00", "2025-6", "25-06", "2025/06", " 2025-06", "2025-06-01"]
BAD_MONTHS += ["", "0000-01", "9999-12", "２０２５-06", "June 2025"]


@pytest.mark.parametrize("bad", BAD_MONTHS)
def test_bad_months_are_refused_with_the_field_named(bad: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_month(bad)
    assert raised.value.field == "month"
    with pytest.raises(ValidationError, match="month"):
        build_invoice("cust-001", bad, [], SHEET)


def test_invoice_ids_are_derived_from_customer_and_month() -> None:
    assert invoice_id("cust-001", "2025-06") == "inv-2025-06-cust-001"
    with pytest.raises(ValidationError, match="customer_id"):
        invoice_id("", "2025-06")


# --- duplicates ------------------------------------------------------------------------------


def test_two_different_records_for_one_interval_are_refused_naming_the_key() -> None:
    first = usage("w7", at("2025-06-03T10:15Z"), "1")
    second = replace(first, gpu_hours=Decimal("1.000001"))
    with pytest.raises(ValidationError, match=r"w7 .* 2025-06-03T10:15:00\+00:00") as raised:
        build_invoice("cust-001", "2025-06", [first, second], SHEET)
    assert raised.value.field == "usage"


def test_a_conflict_in_another_customers_records_is_refused_too() -> None:
    # A key shared by two customers would bill the interval twice across invoices.
    mine = usage("w7", at("2025-06-03T10:15Z"), "1")
    theirs = replace(mine, customer_id="cust-002")
    with pytest.raises(ValidationError, match="w7"):
        build_invoice("cust-001", "2025-06", [mine, theirs], SHEET)


def test_equal_records_are_kept_once_in_first_seen_order() -> None:
    a, b = usage("a", at("2025-06-01T00:00Z"), "1"), usage("b", at("2025-06-01T00:00Z"), "1")
    # the same instant in another zone is the same key and the same record
    a_elsewhere = replace(a, interval_start=a.interval_start.astimezone(CHICAGO_SUMMER))
    assert deduplicate([b, a, b, a_elsewhere]) == [b, a]


# --- invariants ------------------------------------------------------------------------------

FIRST_QUARTER = datetime(2025, 6, 28, tzinfo=UTC)  # 4 days of June, then 2 of July


@st.composite
def usage_records(draw: st.DrawFn) -> UsageRecord:
    tier = draw(st.sampled_from(Tier))
    rt = draw(st.decimals(min_value=-100, max_value=5_000, places=2))
    start = FIRST_QUARTER + QUARTER * draw(st.integers(0, 6 * 96 - 1))
    return UsageRecord(
        workload_id=draw(st.sampled_from(["w0", "w1", "w2", "w3", "w4"])),
        customer_id=draw(st.sampled_from(["c1", "c2"])),
        workload_class=draw(st.sampled_from(WorkloadClass)),
        gpu_family=draw(st.sampled_from(["H100", "A100", "L40S"])),
        tier=tier,
        interval_start=start,
        interval_end=start + QUARTER,
        gpu_hours=draw(st.decimals(min_value=0, max_value=64, places=6)),
        energy_kwh=draw(st.decimals(min_value=0, max_value=50, places=6)),
        rt_price_usd_per_mwh=rt if tier is Tier.INTERRUPTIBLE or draw(st.booleans()) else None,
    )


distinct_usage = st.lists(usage_records(), max_size=60, unique_by=lambda r: r.key)


def june_records(records: list[UsageRecord], customer_id: str) -> list[UsageRecord]:
    start, end = parse_month("2025-06")
    return [r for r in records if r.customer_id == customer_id and start <= r.interval_start < end]


def charge(record: UsageRecord) -> Decimal:
    """Usage × price, computed record by record, unrounded."""
    price = SHEET.gpu_hour_price(
        record.workload_class, record.gpu_family, record.tier, record.rt_price_usd_per_mwh
    )
    return record.gpu_hours * price


@given(distinct_usage)
def test_total_is_the_sum_of_lines_and_of_usage_times_price(records: list[UsageRecord]) -> None:
    invoice = build_invoice("c1", "2025-06", records, SHEET)
    billed = june_records(records, "c1")
    assert invoice.total == sum((line.amount for line in invoice.lines), Decimal(0))
    assert invoice.total.as_tuple().exponent == -2
    exact = sum((charge(r) for r in billed), Decimal(0))
    assert abs(invoice.total - exact) <= Decimal("0.005") * len(invoice.lines)
    assert sum((line.quantity for line in invoice.lines), Decimal(0)) == sum(
        (r.gpu_hours for r in billed), Decimal(0)
    )


@given(distinct_usage)
def test_each_line_is_its_records_usage_times_price_rounded_once(
    records: list[UsageRecord],
) -> None:
    invoice = build_invoice("c1", "2025-06", records, SHEET)
    by_line: dict[str, Decimal] = {}
    for r in june_records(records, "c1"):
        invoice_line = build_invoice("c1", "2025-06", [r], SHEET).lines[0]
        by_line[invoice_line.description] = by_line.get(invoice_line.description, 0) + charge(r)
    assert {line.description: line.amount for line in invoice.lines} == {
        description: round_money(total) for description, total in by_line.items()
    }
    for line in invoice.lines:
        if line.description.endswith(Tier.STANDARD.value):
            assert line.amount == round_money(line.quantity * line.unit_price)


@given(distinct_usage, st.data())
def test_duplicates_are_billed_once_and_order_does_not_matter(
    records: list[UsageRecord], data: st.DataObject
) -> None:
    copies = data.draw(st.lists(st.sampled_from(records), max_size=20)) if records else []
    shuffled = data.draw(st.permutations(records + copies))
    once = build_invoice("c2", "2025-06", records, SHEET)
    assert build_invoice("c2", "2025-06", records, SHEET) == once
    assert build_invoice("c2", "2025-06", shuffled, SHEET) == once
    assert build_invoice("c2", "2025-06", records + records, SHEET) == once


@given(distinct_usage.filter(bool), st.data())
def test_a_changed_copy_of_any_record_is_refused(
    records: list[UsageRecord], data: st.DataObject
) -> None:
    original = data.draw(st.sampled_from(records))
    changed = replace(original, energy_kwh=original.energy_kwh + Decimal("0.000001"))
    with pytest.raises(ValidationError, match=original.workload_id):
        build_invoice("c1", "2025-06", [*records, changed], SHEET)


@given(distinct_usage)
def test_every_record_is_billed_in_exactly_one_month(records: list[UsageRecord]) -> None:
    months = ("2025-05", "2025-06", "2025-07")
    quantities = [
        line.quantity
        for customer in ("c1", "c2")
        for month in months
        for line in build_invoice(customer, month, records, SHEET).lines
    ]
    assert sum(quantities, Decimal(0)) == sum((r.gpu_hours for r in records), Decimal(0))


def test_the_callers_decimal_context_does_not_change_a_bill() -> None:
    records = [
        usage("w1", at("2025-06-01T00:00Z"), "0.333333", BATCH, "L40S"),
        usage("w2", at("2025-06-01T00:00Z"), "12.5", TRAINING, "H100", Tier.INTERRUPTIBLE, "41.7"),
    ]
    expected = build_invoice("cust-001", "2025-06", records, SHEET)
    with localcontext(prec=3, rounding=ROUND_DOWN):
        assert build_invoice("cust-001", "2025-06", records, SHEET) == expected
        assert usage("w1", at("2025-06-01T00:00Z"), "0.333333") is not None


def test_an_invoice_is_final_once_issued_at_or_after_its_months_end() -> None:
    built = build_invoice("cust-001", "2025-06", [], SHEET)
    end = datetime(2025, 7, 1, tzinfo=UTC)
    assert not built.final  # not issued yet
    assert not replace(built, issued_at=end - timedelta(microseconds=1)).final
    assert replace(built, issued_at=end).final
    assert replace(built, issued_at=end) == built  # when it was issued is not what it says
    assert is_final("2025-06", end) and not is_final("2025-06", None)
    # 01:30 on July 1st in UTC+2 is still June in UTC
    assert month_of(datetime(2025, 7, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == "2025-06"


# --- late usage --------------------------------------------------------------------------------


def test_late_usage_is_billed_on_lines_of_its_own_at_its_own_months_prices() -> None:
    """May's invoice is final; 2 GPU-hours of May batch usage were metered after it. June's
    invoice bills them after June's own lines, labelled, at May's list price (2.75, not the
    5.00 in force from June 1), and a late workload with a max price keeps its cap."""
    from hcp.billing.prices import PriceHistory

    history = PriceHistory(SHEET, [(at("2025-06-01T00:00Z"), BATCH, "H100", Decimal("5.0000"))])
    own = [usage("w1", at("2025-06-10T12:00Z"), "1", BATCH)]
    late = [
        usage("w2", at("2025-05-31T23:45Z"), "1.5", BATCH),
        usage("w2", at("2025-05-20T08:00Z"), "0.5", BATCH),
        usage("w3", at("2025-04-30T10:00Z"), "1", BATCH),
        usage("w4", at("2025-05-02T10:00Z"), "1", BATCH),  # capped at 2.00
    ]
    invoice = build_invoice("cust-001", "2025-06", own, history, {"w4": Decimal("2")}, late)
    assert invoice.lines == (
        InvoiceLine(
            "H100 GPU-hours, batch inference, standard",
            Decimal("1"), "GPU-hour", Decimal("5.0000"), Decimal("5.00"),
        ),
        InvoiceLine(
            "late usage from 2025-04: H100 GPU-hours, batch inference, standard",
            Decimal("1"), "GPU-hour", Decimal("2.7500"), Decimal("2.75"), "2025-04",
        ),
        InvoiceLine(
            "late usage from 2025-05: H100 GPU-hours, batch inference, standard",
            Decimal("2"), "GPU-hour", Decimal("2.7500"), Decimal("5.50"), "2025-05",
        ),
        InvoiceLine(
            "late usage from 2025-05: H100 GPU-hours, batch inference, standard, "
            "at the workload's max price 2.0000",
            Decimal("1"), "GPU-hour", Decimal("2.0000"), Decimal("2.00"), "2025-05",
        ),
    )  # fmt: skip
    assert invoice.total == Decimal("15.25")
    # the month's own lines are what they are without late usage
    assert build_invoice("cust-001", "2025-06", own, history).lines == invoice.lines[:1]


def test_late_usage_of_this_month_or_later_or_of_another_customer_is_not_billed_as_late() -> None:
    june = usage("w1", at("2025-06-10T12:00Z"), "1")
    july = usage("w1", at("2025-07-01T00:00Z"), "1")
    theirs = usage("w9", at("2025-05-10T12:00Z"), "1", customer_id="cust-002")
    invoice = build_invoice("cust-001", "2025-06", [june], SHEET, late_usage=[june, july, theirs])
    assert invoice == build_invoice("cust-001", "2025-06", [june], SHEET)
    assert [line.late_usage_month for line in invoice.lines] == [None]


def test_a_late_record_differing_from_the_same_record_of_the_month_is_refused() -> None:
    may = usage("w7", at("2025-05-31T23:45Z"), "1")
    with pytest.raises(ValidationError, match="w7"):
        build_invoice(
            "cust-001", "2025-06", [may], SHEET, late_usage=[replace(may, gpu_hours=Decimal(2))]
        )


@given(distinct_usage, st.data())
def test_an_invoice_with_late_usage_is_reproducible_and_bills_each_record_once(
    records: list[UsageRecord], data: st.DataObject
) -> None:
    """July's invoice with June's usage as late usage: built twice, or from shuffled and
    duplicated records, it is the same; its GPU-hours are July's and June's, each once."""
    june = june_records(records, "c1")
    july = [r for r in records if r.interval_start >= datetime(2025, 7, 1, tzinfo=UTC)]
    once = build_invoice("c1", "2025-07", july, SHEET, late_usage=june)
    again = build_invoice(
        "c1", "2025-07", data.draw(st.permutations(july)), SHEET, late_usage=june[::-1] + june
    )
    assert again == once
    late = [line for line in once.lines if line.late_usage_month is not None]
    assert {line.late_usage_month for line in late} <= {"2025-06"}
    assert all(line.description.startswith("late usage from 2025-06: ") for line in late)
    assert sum((line.quantity for line in late), Decimal(0)) == sum(
        (r.gpu_hours for r in june), Decimal(0)
    )
    assert once.total == sum((line.amount for line in once.lines), Decimal(0))
