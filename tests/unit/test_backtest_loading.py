"""A replay scenario's files, read together: what only shows once both the scenario and the
files it names are known is still reported with the scenario's file, line and key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hcp.backtest.engine import make_strategy, run_backtest
from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.scenario import ReplayMarket, load_scenario
from hcp.domain.errors import DataError

T0 = datetime(2024, 1, 1, 0, tzinfo=UTC)
DAYS = 3


def scenario_text(
    *,
    step_minutes: int = 15,
    site: str = "",
    market: str = "",
    spot: str = "H100 = 2.0",
) -> str:
    """Two days of window after one of warm-up, over the files `files` writes."""
    return f"""name = "files"
sla_penalty_usd_per_gpu_hour = 10.0

[window]
start = 2024-01-02T00:00:00Z
end = 2024-01-04T00:00:00Z
step_minutes = {step_minutes}
warmup_days = 1

[market]
kind = "replay"
electricity = "rt.csv"
bitcoin = "btc.csv"
{market}
[market.gpu_spot_usd_per_gpu_hour]
{spot}

[[sites]]
name = "a"
node = "HB_WEST"
capacity_mw = 2.0
{site}
[sites.contract]
kind = "rt"

[[sites.fleet]]
model = "S21"
count = 100

[[sites.fleet]]
model = "H100 SXM"
count = 8
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Real-time prices every 15 minutes, bitcoin by day, day-ahead for HB_HUBAVG by hour and
    H100 spot quotes every 6 hours, covering the scenario's warm-up and window."""
    steps = DAYS * 96
    rt = ["interval_start_utc,HB_WEST"]
    rt += [
        f"{T0 + timedelta(minutes=15 * k):%Y-%m-%dT%H:%M:%SZ},{20 + k % 7}" for k in range(steps)
    ]
    (tmp_path / "rt.csv").write_text("\n".join(rt) + "\n")
    btc = ["date,difficulty,fees_btc_per_day,btc_usd"]
    btc += [f"2024-01-0{d + 1},7e13,25,43000" for d in range(DAYS)]
    (tmp_path / "btc.csv").write_text("\n".join(btc) + "\n")
    da = ["interval_start_utc,settlement_point,da_spp_usd_per_mwh"]
    da += [f"{T0 + timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ},HB_HUBAVG,30" for h in range(DAYS * 24)]
    (tmp_path / "da.csv").write_text("\n".join(da) + "\n")
    spot = ["timestamp_utc,gpu,usd_per_gpu_hr_median"]
    for k in range(DAYS * 4):
        at = T0 + timedelta(hours=6 * k, minutes=-1)
        spot += [
            f"{at:%Y-%m-%dT%H:%M:%SZ},H100_SXM,{1.5 + 0.1 * k:.1f}",
            f"{at:%Y-%m-%dT%H:%M:%SZ},A100,9",
        ]
    (tmp_path / "spot.csv").write_text("\n".join(spot) + "\n")
    return tmp_path


def scenario_at(folder: Path, text: str) -> Path:
    path = folder / "scenario.toml"
    path.write_text(text)
    return path


def error_loading(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_market(load_scenario(path))
    return str(caught.value)


def test_the_files_load_into_warm_up_and_window(folder: Path) -> None:
    scenario = load_scenario(scenario_at(folder, scenario_text()))
    setup = setup_for(scenario, load_market(scenario))
    assert setup.intervals == 2 * 96 and setup.first == 96
    assert np.all(setup.market.gpu_spot_usd_per_gpu_hour["H100"] == 2.0)


def test_a_warm_up_the_data_cannot_hold_is_shortened_with_a_warning(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = scenario_text().replace("warmup_days = 1", "warmup_days = 3")  # data from the 1st
    scenario = load_scenario(scenario_at(folder, text))
    setup = setup_for(scenario, load_market(scenario))
    assert setup.first == 96  # the one day there is
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "192 × warm-up intervals before the market data starts: warm-up shortened to the 96"
        in message
        for message in warned
    ), warned


def test_a_fractional_warm_up_the_data_holds_is_not_reported_as_shortened(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """1.001 days of warm-up are 96 whole steps, all in the data: nothing is missing."""
    text = scenario_text().replace("warmup_days = 1", "warmup_days = 1.001")
    scenario = load_scenario(scenario_at(folder, text))
    setup = setup_for(scenario, load_market(scenario))
    assert setup.first == 96
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not any("warm-up" in message for message in warned), warned


def test_the_settlement_point_type_to_read_is_a_market_setting(folder: Path) -> None:
    default = load_scenario(scenario_at(folder, scenario_text())).market
    assert isinstance(default, ReplayMarket) and default.settlement_point_type == "LZ"
    text = scenario_text(market='settlement_point_type = "LZEW"')
    chosen = load_scenario(scenario_at(folder, text)).market
    assert isinstance(chosen, ReplayMarket) and chosen.settlement_point_type == "LZEW"
    with pytest.raises(DataError, match=r"market.settlement_point_type: name a type"):
        load_scenario(scenario_at(folder, scenario_text(market='settlement_point_type = " "')))


def test_a_day_ahead_node_that_the_file_lacks_is_named_at_its_line(folder: Path) -> None:
    market = 'day_ahead = "da.csv"'
    typo = scenario_text(market=market, site='day_ahead_node = "HB_HUBAGV"')
    message = error_loading(scenario_at(folder, typo))
    assert message.startswith(f"{folder / 'scenario.toml'}:22: sites[0].day_ahead_node:")
    assert "'HB_HUBAGV' is not in the day-ahead file" in message and "HB_HUBAVG" in message


def test_a_site_whose_node_the_day_ahead_file_lacks_must_name_one(folder: Path) -> None:
    message = error_loading(scenario_at(folder, scenario_text(market='day_ahead = "da.csv"')))
    assert ":18: sites[0]: the day-ahead file" in message
    assert "no prices for node 'HB_WEST': set day_ahead_node to one of" in message


def test_a_day_ahead_node_in_the_file_reaches_the_market(folder: Path) -> None:
    text = scenario_text(market='day_ahead = "da.csv"', site='day_ahead_node = "HB_HUBAVG"')
    series = load_market(load_scenario(scenario_at(folder, text)))
    assert np.all(series.day_ahead_usd_per_mwh["HB_HUBAVG"] == 30.0)


def test_a_step_finer_than_the_prices_is_refused(folder: Path) -> None:
    """Each 15-minute price held over three 5-minute steps would show a decision at 00:05 the
    price of its own interval (the information rule)."""
    message = error_loading(scenario_at(folder, scenario_text(step_minutes=5)))
    assert "rt.csv column interval_start_utc: step 0:05:00 is finer than" in message
    coarser = load_market(load_scenario(scenario_at(folder, scenario_text(step_minutes=60))))
    assert coarser.step == timedelta(hours=1)


def test_a_window_start_off_the_prices_grid_is_named_at_its_line(folder: Path) -> None:
    text = scenario_text().replace("T00:00:00Z", "T00:07:00Z")
    message = error_loading(scenario_at(folder, text))
    assert message == (
        f"{folder / 'scenario.toml'}:5: window.start: 2024-01-02T00:07:00+00:00 is not on the "
        f"0:15:00 grid of the prices in {folder / 'rt.csv'} (intervals from "
        "2024-01-01T00:00:00+00:00)"
    )


def test_coarser_steps_on_a_grid_of_their_own_are_built_from_the_window_start(
    folder: Path,
) -> None:
    """30-minute steps from 00:15 over 15-minute prices: each the mean of its two intervals."""
    text = scenario_text(step_minutes=30).replace("T00:00:00Z", "T00:15:00Z")
    series = load_market(load_scenario(scenario_at(folder, text.replace("01-04T", "01-03T"))))
    assert series.start == datetime(2024, 1, 1, 0, 15, tzinfo=UTC) and len(series) == 2 * 48
    assert series.electricity_usd_per_mwh["HB_WEST"][:2].tolist() == [21.5, 23.5]


def test_steps_off_the_grid_of_several_files_are_refused(folder: Path) -> None:
    """A 30-minute step from 12:15 would need prices from both sides of the files' seam."""
    rows = (folder / "rt.csv").read_text().splitlines()
    (folder / "a.csv").write_text("\n".join(rows[: 1 + 144]) + "\n")
    (folder / "b.csv").write_text("\n".join([rows[0], *rows[1 + 144 :]]) + "\n")
    text = scenario_text(step_minutes=30, market='electricity = ["a.csv", "b.csv"]')
    text = text.replace('electricity = "rt.csv"\n', "").replace("T00:00:00Z", "T00:15:00Z")
    message = error_loading(scenario_at(folder, text.replace("01-04T", "01-03T")))
    assert ":5: window.start: 0:30:00 steps from here are off the grid of " in message
    assert "would straddle the seam between two market.electricity files" in message


def test_the_bitcoin_days_of_several_files_join_into_one_table(folder: Path) -> None:
    """Files split at noon on the 2nd: both read the 2nd's figures, the table holds it once."""
    rows = (folder / "rt.csv").read_text().splitlines()
    (folder / "btc.csv").write_text(
        "date,difficulty,fees_btc_per_day,btc_usd\n"
        "2024-01-01,7e13,25,43000\n2024-01-02,7e13,30,44000\n2024-01-03,7e13,35,45000\n"
    )
    (folder / "a.csv").write_text("\n".join(rows[: 1 + 144]) + "\n")
    (folder / "b.csv").write_text("\n".join([rows[0], *rows[1 + 144 :]]) + "\n")
    text = scenario_text(market='electricity = ["a.csv", "b.csv"]')
    text = text.replace('electricity = "rt.csv"\n', "")
    joined = load_market(load_scenario(scenario_at(folder, text)))
    whole = load_market(load_scenario(scenario_at(folder, scenario_text())))
    assert joined.bitcoin_days is not None and whole.bitcoin_days is not None
    assert joined.bitcoin_days.first == whole.bitcoin_days.first == T0.date()
    assert joined.bitcoin_days.fees_btc_per_day.tolist() == [25, 30, 35]
    assert whole.bitcoin_days.fees_btc_per_day.tolist() == [25, 30, 35]


def test_a_step_of_a_day_earns_what_steps_of_15_minutes_earn(
    shared_data: Path, tmp_path: Path
) -> None:
    """Four days across the 2024 halving and the Runes launch, from 06:00 UTC: always on,
    the miners earn the same in 15-minute steps as in day-long ones, which span two UTC days
    each (before, a day-long step earned its first day's figures all day)."""
    mined = []
    for step in (15, 1440):
        text = HALVING_SCENARIO.format(data=shared_data, step=step)
        scenario = load_scenario(scenario_at(tmp_path, text))
        setup = setup_for(scenario, load_market(scenario))
        mined.append(run_backtest(setup, make_strategy("always_on", setup)).ledger)
    assert mined[0].mining_revenue_usd == pytest.approx(mined[1].mining_revenue_usd, rel=1e-9)
    assert mined[0].energy_cost_usd == pytest.approx(mined[1].energy_cost_usd, rel=1e-9)


HALVING_SCENARIO = """sla_penalty_usd_per_gpu_hour = 10.0
[window]
start = 2024-04-18T06:00:00Z
end = 2024-04-22T06:00:00Z
step_minutes = {step}
warmup_days = 2
[market]
kind = "replay"
electricity = "{data}/raw/ercot_rtm_spp_hubs/ercot_rtm_spp_15min_2024.csv.gz"
bitcoin = "{data}/derived/btc_hashprice_daily_2020_2025.csv"
[[sites]]
name = "w"
node = "HB_WEST"
capacity_mw = 1.0
[sites.contract]
kind = "rt"
[[sites.fleet]]
model = "S21"
count = 100
"""


def test_a_window_outside_the_files_names_them_and_the_window(folder: Path) -> None:
    text = scenario_text().replace("end = 2024-01-04", "end = 2024-01-05")
    message = error_loading(scenario_at(folder, text))
    assert f"scenario.toml:4: window: the market data ({folder / 'rt.csv'}) covers" in message
    # half a day of data before the window: a decision would lack the day before's bitcoin
    early = scenario_text().replace("start = 2024-01-02T00", "start = 2024-01-01T12")
    assert "needs it all and at least a day before it" in error_loading(scenario_at(folder, early))


SPOT_FILE = """[market.gpu_spot_usd_per_gpu_hour.H100]
path = "spot.csv"
price_column = "usd_per_gpu_hr_median"
gpu_column = "gpu"
gpu = "H100_SXM"
"""


def test_gpu_spot_quotes_from_a_file_hold_until_the_next(folder: Path) -> None:
    text = scenario_text(spot="").replace("[market.gpu_spot_usd_per_gpu_hour]\n", SPOT_FILE)
    series = load_market(load_scenario(scenario_at(folder, text)))
    spot = series.gpu_spot_usd_per_gpu_hour["H100"]
    assert len(spot) == (1 + 2) * 96
    # Quotes at 23:59, 05:59, 11:59 and 17:59 from the eve of the warm-up day, 1.5 rising by 0.1.
    assert spot[0] == spot[23] == pytest.approx(1.5) and spot[24] == pytest.approx(1.6)
    assert spot[-1] == pytest.approx(1.5 + 0.1 * 11)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (('gpu = "H100_SXM"', 'gpu = "H200"'), "spot.csv column gpu: no rows for GPU 'H200'"),
        (('gpu = "H100_SXM"\n', ""), ":15: market.gpu_spot_usd_per_gpu_hour.H100.gpu: gpu_col"),
        (('"spot.csv"', '"quotes.csv"'), "market.gpu_spot_usd_per_gpu_hour.H100.path: no such"),
        (('usd_per_gpu_hr_median"', 'usd"'), "spot.csv:1 column usd: "),
    ],
)
def test_gpu_spot_file_mistakes_are_named(
    folder: Path, change: tuple[str, str], where: str
) -> None:
    text = scenario_text(spot="").replace("[market.gpu_spot_usd_per_gpu_hour]\n", SPOT_FILE)
    assert change[0] in text
    message = error_loading(scenario_at(folder, text.replace(change[0], change[1], 1)))
    assert where in message


def test_gpu_spot_that_is_neither_a_price_nor_a_table_is_refused(folder: Path) -> None:
    path = scenario_at(folder, scenario_text(spot='H100 = "spot.csv"'))
    with pytest.raises(DataError, match="H100: expected USD/GPU-hour or a table with path"):
        load_scenario(path)


def test_data_after_the_window_plays_no_part_and_cannot_stop_the_run(folder: Path) -> None:
    """A price file running on past the window, with an empty price there and no bitcoin day
    for it: those rows are outside the run, and it goes ahead (it failed on them)."""
    rows = (folder / "rt.csv").read_text().splitlines()
    later = T0 + timedelta(days=DAYS)
    rows += [f"{later + timedelta(minutes=15 * k):%Y-%m-%dT%H:%M:%SZ},{20 + k}" for k in range(96)]
    rows += [f"{later + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ},"]  # an empty price
    (folder / "rt.csv").write_text("\n".join(rows) + "\n")
    scenario = load_scenario(scenario_at(folder, scenario_text()))
    setup = setup_for(scenario, load_market(scenario))
    assert setup.intervals == 2 * 96 and setup.first == 96
