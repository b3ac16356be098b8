"""Economics against hand-worked numbers, plus the invariants that must hold for any input."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.domain.catalog import ASIC_MODELS, asic_model
from hcp.domain.devices import AsicProfile
from hcp.domain.errors import ValidationError
from hcp.domain.market import MarketSnapshot
from hcp.domain.workloads import WorkloadClass
from hcp.economics import (
    BLOCKS_PER_DAY,
    DEFAULT_POOL_FEE,
    DEFAULT_PRICE_SHEET,
    GpuPriceSheet,
    ProfitabilityRequest,
    asic_profit_usd_per_hour,
    asic_revenue_usd,
    block_subsidy_btc,
    breakeven_usd_per_mwh,
    btc_per_ths_day,
    calculate_profitability,
    energy_cost_usd,
    gpu_hour_value_usd,
    gpu_revenue_usd,
    hashprice_usd_per_ths_day,
    snapshot_hashprice,
)

REALTIME = WorkloadClass.AI_INFERENCE_REALTIME
S21_STOCK = asic_model("S21").stock
NODE = "HB_WEST"
# Network figures for 2024-04-21 (after the halving), from the project's daily BTC data.
DIFFICULTY_0421 = 86_388_558_925_171.25
FEES_BTC_PER_DAY_0421 = 344.07552762
BTC_USD_0421 = 64_991.71


@pytest.fixture
def snapshot() -> MarketSnapshot:
    """2024-04-21 network figures, $45/MWh at HB_WEST, H100 spot $2.73/GPU-h (the seed's)."""
    return MarketSnapshot(
        at=datetime(2024, 4, 21, 12, tzinfo=UTC),
        electricity_usd_per_mwh={NODE: 45.0},
        btc_usd=BTC_USD_0421,
        difficulty=DIFFICULTY_0421,
        fees_btc_per_day=FEES_BTC_PER_DAY_0421,
        gpu_spot_usd_per_gpu_hour={"H100": 2.73},
    )


# --- subsidy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "subsidy_btc"),
    [
        (datetime(2019, 12, 31, tzinfo=UTC), 12.5),
        (datetime(2020, 5, 11, 19, 23, 42, tzinfo=UTC), 12.5),  # a second before block 630,000
        (datetime(2020, 5, 11, 19, 23, 43, tzinfo=UTC), 6.25),  # block 630,000
        (datetime(2024, 4, 20, 0, 9, 26, tzinfo=UTC), 6.25),  # a second before block 840,000
        (datetime(2024, 4, 20, 0, 9, 27, tzinfo=UTC), 3.125),  # block 840,000
        (datetime(2025, 12, 31, tzinfo=UTC), 3.125),
    ],
)
def test_block_subsidy_halves_at_the_halving_blocks(at: datetime, subsidy_btc: float) -> None:
    assert block_subsidy_btc(at) == subsidy_btc


def test_block_subsidy_compares_instants_not_wall_clocks() -> None:
    # 2024-04-19 20:09:27 in UTC-4 is 2024-04-20 00:09:27 UTC: block 840,000.
    eastern = timezone(timedelta(hours=-4))
    assert block_subsidy_btc(datetime(2024, 4, 19, 20, 9, 27, tzinfo=eastern)) == 3.125


def test_block_subsidy_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        block_subsidy_btc(datetime(2024, 4, 21))


# --- BTC per TH/s per day and hashprice ------------------------------------------------------


def test_btc_per_ths_day_on_a_one_block_per_day_difficulty() -> None:
    # difficulty = 86400e12 / 2^32 makes 1 TH/s win exactly one block a day;
    # fees of 144 BTC/day are 1 BTC per block, so the day pays 3.125 + 1 = 4.125 BTC.
    difficulty = 86_400e12 / 2**32
    assert btc_per_ths_day(difficulty, 144.0, 3.125) == pytest.approx(4.125)
    assert BLOCKS_PER_DAY == 144


def test_hashprice_on_2024_04_19_before_the_halving() -> None:
    # difficulty × 2^32 = 86,388,558,925,171.31 × 4,294,967,296 = 3.710360e23 hashes per block
    # blocks won per TH/s-day = 86400e12 / 3.710360e23 = 2.328615e-7
    # BTC per block = 6.25 + 116.94264961 / 144 = 6.25 + 0.812102 = 7.062102
    # hashprice = 2.328615e-7 × 7.062102 × 63,507.69 = $0.104438 /TH/s/day
    hashprice = hashprice_usd_per_ths_day(
        86_388_558_925_171.31, 116.94264961, 63_507.69, datetime(2024, 4, 19, 12, tzinfo=UTC)
    )
    assert hashprice == pytest.approx(0.104438, rel=1e-5)


def test_hashprice_on_2024_04_21_after_the_halving() -> None:
    # Same difficulty, so 2.328615e-7 blocks per TH/s-day;
    # BTC per block = 3.125 + 344.07552762 / 144 = 3.125 + 2.389413 = 5.514413
    # hashprice = 2.328615e-7 × 5.514413 × 64,991.71 = $0.083455 /TH/s/day
    hashprice = hashprice_usd_per_ths_day(
        DIFFICULTY_0421, FEES_BTC_PER_DAY_0421, BTC_USD_0421, datetime(2024, 4, 21, tzinfo=UTC)
    )
    assert hashprice == pytest.approx(0.083455, rel=1e-5)


def test_snapshot_hashprice_uses_the_snapshot_instant(snapshot: MarketSnapshot) -> None:
    assert snapshot_hashprice(snapshot) == pytest.approx(0.083455, rel=1e-5)
    # The same network a week earlier still earned the 6.25 BTC subsidy: 2.328615e-7 ×
    # (6.25 + 2.389413) = 2.011787e-6 BTC; × 64,991.71 = $0.130749
    week_before = replace(snapshot, at=snapshot.at - timedelta(days=7))
    assert snapshot_hashprice(week_before) == pytest.approx(0.130749, rel=1e-5)


# --- ASIC revenue, cost, profit, breakeven ---------------------------------------------------


def test_asic_revenue_for_one_hour_after_pool_fee() -> None:
    # 200 TH/s × $0.05/TH/day × (3600 / 86400) day × (1 − 0.02) = $0.408333
    assert asic_revenue_usd(200.0, 0.05, 3_600) == pytest.approx(0.408333, rel=1e-6)
    assert DEFAULT_POOL_FEE == 0.02


def test_energy_cost_of_the_seed_example() -> None:
    # 0.7 kW × 1 h × $45/MWh / 1000 = $0.0315
    assert energy_cost_usd(0.7, 1.0, 45.0) == pytest.approx(0.0315)
    # with PUE 1.2: 0.7 × 1.2 × 1 × 45 / 1000 = $0.0378
    assert energy_cost_usd(0.7, 1.0, 45.0, pue=1.2) == pytest.approx(0.0378)


def test_negative_price_is_a_negative_cost() -> None:
    # 3.5 kW × 2 h × −$20/MWh / 1000 = −$0.14: the grid pays us to consume.
    assert energy_cost_usd(3.5, 2.0, -20.0) == pytest.approx(-0.14)


def test_energy_cost_refuses_pue_below_one() -> None:
    with pytest.raises(ValueError, match="pue"):
        energy_cost_usd(1.0, 1.0, 45.0, pue=0.9)


def test_s21_stock_profit_per_hour() -> None:
    # revenue $0.408333/h − cost 3.5 kW × $100/MWh / 1000 = $0.35/h → $0.058333/h
    profit = asic_profit_usd_per_hour(S21_STOCK, 0.05, 100.0)
    assert profit == pytest.approx(0.058333, rel=1e-5)


def test_s21_stock_breakeven() -> None:
    # $0.408333/h over 3.5 kW = 0.0035 MWh/h → $116.67/MWh
    assert breakeven_usd_per_mwh(S21_STOCK, 0.05) == pytest.approx(116.6667, rel=1e-6)
    # PUE 1.25 buys 0.004375 MWh/h: $0.408333 / 0.004375 = $93.33/MWh
    assert breakeven_usd_per_mwh(S21_STOCK, 0.05, pue=1.25) == pytest.approx(93.3333, rel=1e-6)


def test_underclocking_raises_the_breakeven() -> None:
    # Fewer J/TH means more revenue per MWh: eco-low keeps mining at prices stock cannot.
    model = asic_model("S21")
    assert breakeven_usd_per_mwh(model.profile("eco-low"), 0.05) > breakeven_usd_per_mwh(
        model.stock, 0.05
    )


# --- GPU -------------------------------------------------------------------------------------


def test_gpu_revenue() -> None:
    # 8 GPUs × 2.5 h × $4.00/GPU-h = $80
    assert gpu_revenue_usd(8, 2.5, 4.00) == pytest.approx(80.0)


def test_default_price_sheet_ranks_classes_and_families() -> None:
    sheet = DEFAULT_PRICE_SHEET
    assert 3.5 <= sheet.price(REALTIME, "H100") <= 4.5
    for family in ("H100", "A100", "L40S"):
        prices = [sheet.price(c, family) for c in WorkloadClass]
        assert prices == sorted(prices, reverse=True)  # realtime > batch > training
    assert sheet.price(REALTIME, "H100") > sheet.price(REALTIME, "A100") > 0


def test_price_sheet_names_known_families_for_an_unknown_one() -> None:
    with pytest.raises(KeyError, match="H100"):
        DEFAULT_PRICE_SHEET.price(REALTIME, "B200")


def test_gpu_hour_value_is_the_class_price_or_spot_when_unlisted() -> None:
    sheet = GpuPriceSheet({REALTIME: {"H100": 4.0}})
    assert gpu_hour_value_usd(REALTIME, "H100", sheet, spot_usd_per_gpu_hour=2.73) == 4.0
    assert gpu_hour_value_usd(REALTIME, "B200", sheet, spot_usd_per_gpu_hour=5.5) == 5.5


# --- the seed's profitability calculation ----------------------------------------------------


def test_gpu_realtime_profitability_of_the_seed_example(snapshot: MarketSnapshot) -> None:
    # revenue: 1 GPU × 1 h × $4.00 (H100 realtime list price) = $4.00
    # cost: 0.7 kW × 1 h × $45/MWh / 1000 = $0.0315 → net $3.9685, score 100 × 3.9685/4 = 99.2125
    # breakeven: $4.00/h over 0.0007 MWh/h = $5,714.29/MWh
    req = ProfitabilityRequest("GPU", workload_type=REALTIME, power_draw_w=700)
    result = calculate_profitability(req, snapshot, NODE)
    assert result.expected_revenue == pytest.approx(4.0)
    assert result.estimated_cost == pytest.approx(0.0315)
    assert result.net_profit == pytest.approx(3.9685)
    assert result.score == pytest.approx(99.2125)
    assert result.recommendation == "allocate"
    assert result.breakeven_usd_per_mwh == pytest.approx(5_714.2857, rel=1e-6)


def test_gpu_without_workload_earns_spot(snapshot: MarketSnapshot) -> None:
    # The seed's numbers: spot $2.73 − $0.0315 = $2.6985. H100 defaults to the SXM's 700 W.
    result = calculate_profitability(ProfitabilityRequest("GPU"), snapshot, NODE)
    assert result.expected_revenue == pytest.approx(2.73)
    assert result.estimated_cost == pytest.approx(0.0315)
    assert result.net_profit == pytest.approx(2.6985)


def test_gpu_model_name_sets_power_and_duration_scales(snapshot: MarketSnapshot) -> None:
    # H100 PCIe 0.35 kW × 4 h × 1.2 PUE × $45/MWh / 1000 = $0.0756; revenue 4 h × $4 = $16
    req = ProfitabilityRequest(
        "GPU", workload_type=REALTIME, gpu_type="H100 PCIe", duration_hours=4.0, pue=1.2
    )
    result = calculate_profitability(req, snapshot, NODE)
    assert result.estimated_cost == pytest.approx(0.0756)
    assert result.expected_revenue == pytest.approx(16.0)


def test_asic_mines_at_45_usd_per_mwh(snapshot: MarketSnapshot) -> None:
    # revenue: 200 TH/s × $0.0834555 × 0.98 / 24 = $0.681553/h; cost: 3.5 × 45 / 1000 = $0.1575
    # net $0.524053, score 100 × 0.524053 / 0.681553 = 76.891
    result = calculate_profitability(ProfitabilityRequest("ASIC"), snapshot, NODE)
    assert result.expected_revenue == pytest.approx(0.681553, rel=1e-5)
    assert result.estimated_cost == pytest.approx(0.1575)
    assert result.net_profit == pytest.approx(0.524053, rel=1e-5)
    assert result.score == pytest.approx(76.891, rel=1e-4)
    assert result.recommendation == "mine"
    # breakeven: $0.681553 / 0.0035 MWh = $194.73/MWh
    assert result.breakeven_usd_per_mwh == pytest.approx(194.729, rel=1e-5)


def test_the_same_network_before_the_halving_breaks_even_higher(snapshot: MarketSnapshot) -> None:
    # A week earlier the 6.25 BTC subsidy held: hashprice $0.130749 (see above), revenue
    # 200 TH/s × $0.130749 × 0.98 / 24 = $1.067784/h; breakeven $1.067784 / 0.0035 = $305.08/MWh,
    # against $194.73 after the halving.
    before = replace(snapshot, at=snapshot.at - timedelta(days=7))
    result = calculate_profitability(ProfitabilityRequest("ASIC"), before, NODE)
    assert result.expected_revenue == pytest.approx(1.067784, rel=1e-5)
    assert result.breakeven_usd_per_mwh == pytest.approx(305.081, rel=1e-5)
    assert breakeven_usd_per_mwh(S21_STOCK, 0.130749) == pytest.approx(305.081, rel=1e-5)


def test_asic_curtails_above_breakeven(snapshot: MarketSnapshot) -> None:
    # $300/MWh × 3.5 kW = $1.05/h > $0.68/h revenue
    pricey = replace(snapshot, electricity_usd_per_mwh={NODE: 300.0})
    result = calculate_profitability(ProfitabilityRequest("ASIC"), pricey, NODE)
    assert result.net_profit < 0
    assert (result.score, result.recommendation) == (0.0, "curtail")


def test_asic_overrides_hashrate_and_power(snapshot: MarketSnapshot) -> None:
    # 100 TH/s at 1750 W earns half the stock revenue and pays half the stock cost.
    req = ProfitabilityRequest("ASIC", hashrate_ths=100.0, power_draw_w=1_750.0)
    result = calculate_profitability(req, snapshot, NODE)
    assert result.expected_revenue == pytest.approx(0.681553 / 2, rel=1e-5)
    assert result.estimated_cost == pytest.approx(0.1575 / 2)


def test_negative_price_clips_score_to_100(snapshot: MarketSnapshot) -> None:
    # cost 0.7 kW × −$20/MWh / 1000 = −$0.014 → net $4.014 > revenue $4.00
    paid = replace(snapshot, electricity_usd_per_mwh={NODE: -20.0})
    req = ProfitabilityRequest("GPU", workload_type=REALTIME)
    result = calculate_profitability(req, paid, NODE)
    assert result.estimated_cost == pytest.approx(-0.014)
    assert result.net_profit == pytest.approx(4.014)
    assert result.score == 100.0


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (ProfitabilityRequest("TPU"), "resource_type"),  # type: ignore[arg-type]
        (ProfitabilityRequest("GPU", gpu_type="B200"), "gpu_type"),
        (ProfitabilityRequest("ASIC", asic_model="S9"), "asic_model"),
        (ProfitabilityRequest("ASIC", profile="ludicrous"), "profile"),
        (ProfitabilityRequest("GPU", power_draw_w=-1.0), "power_draw_w"),
        (ProfitabilityRequest("ASIC", hashrate_ths=-5.0), "hashrate_ths"),
        (ProfitabilityRequest("GPU", duration_hours=-1.0), "duration_hours"),
        (ProfitabilityRequest("GPU", duration_hours=float("nan")), "duration_hours"),
        (ProfitabilityRequest("ASIC", pue=0.8), "pue"),
    ],
)
def test_invalid_requests_name_the_field(
    req: ProfitabilityRequest, field: str, snapshot: MarketSnapshot
) -> None:
    with pytest.raises(ValidationError) as caught:
        calculate_profitability(req, snapshot, NODE)
    assert caught.value.field == field


# --- properties ------------------------------------------------------------------------------

profiles = st.sampled_from([p for m in ASIC_MODELS.values() for p in m.profiles])
hashprices = st.floats(min_value=0.01, max_value=1.0)
pues = st.floats(min_value=1.0, max_value=2.0)
pool_fees = st.floats(min_value=0.0, max_value=0.1)
prices_usd_per_mwh = st.floats(min_value=-500.0, max_value=5_000.0)


@given(profiles, hashprices, pues, pool_fees)
def test_breakeven_price_gives_zero_profit(
    profile: AsicProfile, hashprice: float, pue: float, pool_fee: float
) -> None:
    price = breakeven_usd_per_mwh(profile, hashprice, pue, pool_fee)
    profit = asic_profit_usd_per_hour(profile, hashprice, price, pue, pool_fee)
    assert profit == pytest.approx(0.0, abs=1e-9)


@given(profiles, hashprices, prices_usd_per_mwh, st.floats(min_value=0.1, max_value=100.0))
def test_profit_falls_as_electricity_rises(
    profile: AsicProfile, hashprice: float, price: float, rise: float
) -> None:
    assert asic_profit_usd_per_hour(profile, hashprice, price + rise) < asic_profit_usd_per_hour(
        profile, hashprice, price
    )


@given(
    st.floats(min_value=0.0, max_value=1_000.0),
    hashprices,
    st.floats(min_value=0.0, max_value=86_400.0),
    st.floats(min_value=0.0, max_value=86_400.0),
)
def test_asic_revenue_is_linear_in_time(
    hashrate_ths: float, hashprice: float, first_s: float, then_s: float
) -> None:
    whole = asic_revenue_usd(hashrate_ths, hashprice, first_s + then_s)
    parts = asic_revenue_usd(hashrate_ths, hashprice, first_s) + asic_revenue_usd(
        hashrate_ths, hashprice, then_s
    )
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-12)


@given(
    st.floats(min_value=0.0, max_value=10_000.0),
    st.floats(min_value=0.0, max_value=24.0),
    prices_usd_per_mwh,
    pues,
)
def test_energy_cost_has_the_sign_of_the_price(
    power_kw: float, hours: float, price: float, pue: float
) -> None:
    cost = energy_cost_usd(power_kw, hours, price, pue)
    assert cost * price >= 0
    assert abs(cost) <= power_kw * 2.0 * hours * abs(price) / 1_000 + 1e-9


@given(
    st.sampled_from(["GPU", "ASIC"]),
    prices_usd_per_mwh,
    st.floats(min_value=0.0, max_value=48.0),
)
def test_score_stays_between_0_and_100(resource: str, price: float, hours: float) -> None:
    snap = MarketSnapshot(
        at=datetime(2024, 4, 21, tzinfo=UTC),
        electricity_usd_per_mwh={NODE: price},
        btc_usd=BTC_USD_0421,
        difficulty=DIFFICULTY_0421,
        fees_btc_per_day=FEES_BTC_PER_DAY_0421,
        gpu_spot_usd_per_gpu_hour={"H100": 2.73},
    )
    req = ProfitabilityRequest(resource, duration_hours=hours)  # type: ignore[arg-type]
    result = calculate_profitability(req, snap, NODE)
    assert 0.0 <= result.score <= 100.0
    assert result.net_profit == pytest.approx(result.expected_revenue - result.estimated_cost)


@given(
    st.datetimes(min_value=datetime(2016, 8, 1), max_value=datetime(2030, 1, 1)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3_000)),
)
def test_subsidy_never_rises_with_time(at: datetime, later_by: timedelta) -> None:
    aware = at.replace(tzinfo=UTC)
    assert block_subsidy_btc(aware + later_by) <= block_subsidy_btc(aware)
