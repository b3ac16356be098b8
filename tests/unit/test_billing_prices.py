"""Billing prices: Decimal list prices from the economics sheet, and the interruptible tier
against hand-worked numbers and its invariants (between the floor and the list price, rising
with the real-time price)."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.billing.prices import (
    DEFAULT_BILLING_SHEET,
    BillingPriceSheet,
    InterruptibleTerms,
    Tier,
    interruptible_price,
)
from hcp.billing.rounding import round_money, round_price
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass
from hcp.economics.gpu import DEFAULT_PRICE_SHEET, GpuPriceSheet

BATCH = WorkloadClass.AI_INFERENCE_BATCH
TRAINING = WorkloadClass.AI_TRAINING
H100_KW = Decimal("0.7")
LIST = Decimal("2.75")


def test_from_economics_converts_float_list_prices_through_str() -> None:
    sheet = BillingPriceSheet.from_economics(DEFAULT_PRICE_SHEET)
    price = sheet.list_price(WorkloadClass.AI_INFERENCE_REALTIME, "H100")
    assert isinstance(price, Decimal)
    assert price == Decimal("4.00")
    assert sheet.list_price(BATCH, "H100") == LIST
    # 1.1 as a float is 1.100000000000000088...; via str it is exactly 1.1.
    assert str(sheet.list_price(BATCH, "L40S")) == "1.1"


def test_catalog_power_is_the_family_flagship() -> None:
    assert DEFAULT_BILLING_SHEET.gpu_power_kw["H100"] == H100_KW  # H100 SXM, 700 W
    assert DEFAULT_BILLING_SHEET.gpu_power_kw["A100"] == Decimal("0.4")


def test_list_price_of_an_unpriced_family_names_it() -> None:
    with pytest.raises(ValidationError, match=r"'B200'.*known: A100, H100, L40S"):
        DEFAULT_BILLING_SHEET.list_price(TRAINING, "B200")


def test_sheet_refuses_prices_finer_than_a_hundredth_of_a_cent() -> None:
    fine = GpuPriceSheet(MappingProxyType({TRAINING: {"H100": 2.12345}}))
    with pytest.raises(ValidationError, match="more than 4 decimal places"):
        BillingPriceSheet.from_economics(fine)


def test_sheet_refuses_negative_prices() -> None:
    with pytest.raises(ValidationError, match=r"ai_training\.H100"):
        BillingPriceSheet(MappingProxyType({TRAINING: {"H100": Decimal("-1")}}))


@pytest.mark.parametrize(
    ("rt", "expected"),
    [
        # energy = 0.7 kW × 1.2 × 40 / 1000 = 0.0336 $/GPU-h; × 1.25 = 0.042; + 2.75 × 0.5
        (Decimal("40"), Decimal("1.4170")),
        # free or negative power: only the base share, 2.75 × 0.5 = 1.375
        (Decimal("0"), Decimal("1.3750")),
        (Decimal("-20"), Decimal("1.3750")),
        # energy = 0.7 × 1.2 × 2000 / 1000 = 1.68; × 1.25 = 2.1; 1.375 + 2.1 = 3.475 > list
        (Decimal("2000"), Decimal("2.7500")),
        # energy = 0.7 × 1.2 × 123.45 / 1000 = 0.103698; × 1.25 = 0.1296225; + 1.375
        # = 1.5046225 -> 1.5046
        (Decimal("123.45"), Decimal("1.5046")),
    ],
)
def test_interruptible_price_worked_examples(rt: Decimal, expected: Decimal) -> None:
    assert interruptible_price(LIST, rt, H100_KW) == expected


def test_interruptible_price_rounds_half_up_to_a_hundredth_of_a_cent() -> None:
    # 1.0 × 0.5 + (1 kW × pue 1 × $0.04/MWh / 1000) × 1.25 = 0.5 + 0.00005 = 0.50005 -> 0.5001
    terms = InterruptibleTerms(Decimal("0.5"), Decimal("1.25"), Decimal("1"))
    assert interruptible_price(Decimal("1"), Decimal("0.04"), Decimal("1"), terms) == Decimal(
        "0.5001"
    )


def test_interruptible_price_takes_a_float_rt_price_through_str() -> None:
    assert interruptible_price(LIST, 40.1, H100_KW) == interruptible_price(
        LIST, Decimal("40.1"), H100_KW
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN")])
def test_interruptible_price_refuses_non_finite_rt_prices(bad: Decimal | float) -> None:
    with pytest.raises(ValidationError, match="rt_price_usd_per_mwh"):
        interruptible_price(LIST, bad, H100_KW)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base_share": Decimal("1.5")}, "base_share"),
        ({"energy_markup": Decimal("0.9")}, "energy_markup"),
        ({"pue": Decimal("0.8")}, "pue"),
    ],
)
def test_interruptible_terms_are_checked(kwargs: dict[str, Decimal], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        InterruptibleTerms(**kwargs)
    assert raised.value.field == field


def test_gpu_hour_price_by_tier() -> None:
    sheet = DEFAULT_BILLING_SHEET
    assert sheet.gpu_hour_price(BATCH, "H100", Tier.STANDARD) == LIST
    assert sheet.gpu_hour_price(BATCH, "H100", Tier.INTERRUPTIBLE, Decimal("40")) == Decimal(
        "1.4170"
    )
    with pytest.raises(ValidationError, match="rt_price_usd_per_mwh"):
        sheet.gpu_hour_price(BATCH, "H100", Tier.INTERRUPTIBLE)


prices = st.decimals(min_value=0, max_value=50, places=4)
rt_prices = st.decimals(min_value=-500, max_value=10_000, places=2)
power_kw = st.decimals(min_value=0, max_value=2, places=3)
shares = st.decimals(min_value=0, max_value=1, places=2)


@given(prices, rt_prices, power_kw, shares)
def test_interruptible_price_lies_between_the_base_share_and_the_list_price(
    list_price: Decimal, rt: Decimal, kw: Decimal, share: Decimal
) -> None:
    terms = InterruptibleTerms(base_share=share)
    price = interruptible_price(list_price, rt, kw, terms)
    assert round_price(list_price * share) <= price <= list_price


@given(prices, rt_prices, rt_prices, power_kw)
def test_interruptible_price_never_falls_when_power_gets_dearer(
    list_price: Decimal, rt_a: Decimal, rt_b: Decimal, kw: Decimal
) -> None:
    low, high = sorted((rt_a, rt_b))
    assert interruptible_price(list_price, low, kw) <= interruptible_price(list_price, high, kw)


@given(st.decimals(min_value=-1000, max_value=1000, places=3))
def test_money_rounds_half_away_from_zero(amount: Decimal) -> None:
    rounded = round_money(amount)
    assert abs(rounded - amount) <= Decimal("0.005")
    if abs(amount - rounded) == Decimal("0.005"):
        assert abs(rounded) > abs(amount)


def test_a_price_history_gives_the_sheet_in_force_at_each_instant() -> None:
    from datetime import UTC, datetime, timedelta

    from hcp.billing.prices import DEFAULT_BILLING_SHEET, PriceHistory

    batch = WorkloadClass.AI_INFERENCE_BATCH
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    history = PriceHistory(
        DEFAULT_BILLING_SHEET,
        [
            (t0 + timedelta(days=2), batch, "H100", Decimal("5.0000")),
            (t0, batch, "H100", Decimal("4.0000")),  # out of order: sorted by instant
            (t0 + timedelta(days=2), batch, "A100", Decimal("1.0000")),  # same instant
        ],
    )

    def h100(at: datetime) -> Decimal:
        return history.at(at).usd_per_gpu_hour[batch]["H100"]

    default = DEFAULT_BILLING_SHEET.usd_per_gpu_hour[batch]["H100"]
    assert h100(t0 - timedelta(microseconds=1)) == default
    assert h100(t0) == Decimal("4.0000")  # in force from its instant on
    assert h100(t0 + timedelta(days=2)) == Decimal("5.0000")
    assert history.at(t0 + timedelta(days=3)).usd_per_gpu_hour[batch]["A100"] == Decimal("1.0000")
    assert history.current == history.at(t0 + timedelta(days=99))
