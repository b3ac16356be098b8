"""Scenario files: the shipped examples parse; mistakes are reported with file, line and key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.scenario import ReplayMarket, load_scenario
from hcp.domain.errors import DataError
from hcp.optimizer.inputs import RtContract

EXAMPLES = Path(__file__).parents[2] / "examples"
SMALL = (EXAMPLES / "synthetic-small.toml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_the_synthetic_example_parses_into_sites_demand_and_terms() -> None:
    scenario = load_scenario(EXAMPLES / "synthetic-small.toml")
    site = scenario.sites[0]
    assert scenario.name == "synthetic-small" and scenario.step == timedelta(minutes=15)
    assert site.capacity_mw == 2.0 and site.contract == RtContract(4.0)
    assert (site.min_on_steps, site.min_off_steps, site.ramp_mw_per_step) == (2, 2, 1.0)
    assert [f.count for f in site.asics] == [500] and [f.count for f in site.gpus] == [32]
    demand = scenario.demand["pilot"]
    assert demand.family == "H100" and demand.realtime is not None
    assert [a.price_usd_per_gpu_hour for a in demand.arrivals] == [2.75, 2.25]  # price sheet
    assert scenario.terms.sla_penalty_usd_per_gpu_hour == 10.0


def test_a_simulated_setup_has_warm_up_then_the_window() -> None:
    scenario = load_scenario(EXAMPLES / "synthetic-small.toml")
    setup = setup_for(scenario, load_market(scenario))
    assert setup.intervals == 7 * 96 and setup.first == 3 * 96
    start_s = int(scenario.start.timestamp())
    assert int(setup.market.seconds[setup.first]) == start_s
    assert all(setup.first <= job.release < job.deadline for job in setup.demand.jobs)
    assert np.all(setup.market.hashprice_usd_per_ths_day > 0)


def test_a_simulated_window_written_with_an_offset_is_the_same_instants_in_utc(
    tmp_path: Path,
) -> None:
    """The simulator keeps time in UTC: a window written in Central time is simulated from the
    same instants as the one written in UTC, not refused."""
    central = SMALL.replace("T00:00:00Z", "T00:00:00-06:00")
    utc = SMALL.replace("T00:00:00Z", "T06:00:00Z")
    assert central != SMALL and utc != SMALL
    series = [load_market(load_scenario(write(tmp_path, text))) for text in (central, utc)]
    assert series[0].start == series[1].start == datetime(2025, 2, 28, 6, tzinfo=UTC)
    prices = [s.electricity_usd_per_mwh["HB_WEST"] for s in series]
    assert np.array_equal(prices[0], prices[1])


def test_a_simulated_warm_up_is_whole_steps_and_leaves_the_window_where_it_is(
    tmp_path: Path,
) -> None:
    """2.9999 days of warm-up are 287 whole 15-minute steps: the window still starts at its
    start, not 8.64 s before it."""
    text = SMALL.replace("warmup_days = 3", "warmup_days = 2.9999")
    scenario = load_scenario(write(tmp_path, text))
    series = load_market(scenario)
    assert series.start == scenario.start - 287 * timedelta(minutes=15)
    setup = setup_for(scenario, series)
    assert setup.first == 287 and setup.intervals == 7 * 96
    assert int(setup.market.seconds[setup.first]) == int(scenario.start.timestamp())


def test_a_warm_up_of_less_than_a_day_in_whole_steps_is_refused(tmp_path: Path) -> None:
    """With 7-hour steps a day of warm-up is three steps, 21 hours: not a day."""
    text = SMALL.replace("step_minutes = 15", "step_minutes = 420").replace(
        "warmup_days = 3", "warmup_days = 1"
    )
    with pytest.raises(DataError, match=r"warmup_days: must hold at least one day in whole steps"):
        load_scenario(write(tmp_path, text))


def test_the_ercot_examples_read_the_shared_data(shared_data: Path) -> None:
    scenario = load_scenario(EXAMPLES / "ercot-west-uri-2021.toml")
    assert isinstance(scenario.market, ReplayMarket)
    assert scenario.market.bitcoin.is_relative_to(shared_data.resolve())
    setup = setup_for(scenario, load_market(scenario))
    assert setup.intervals == 21 * 96 and setup.first == 7 * 96
    uri = setup.market.electricity_usd_per_mwh["HB_WEST"][setup.first :]
    assert uri.max() > 8000  # the storm's cap prices
    year = load_scenario(EXAMPLES / "ercot-west-2024.toml")
    assert year.start == datetime(2024, 1, 1, 6, tzinfo=UTC) and year.sites[0].gpus[0].count == 512


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "capacity_mw = 2.0",
            "capcity_mw = 2.0",
            ":26: sites[0].capacity_mw: missing (required); did you mean capcity_mw?",
        ),
        ('model = "S21"', 'model = "S22"', ":40: sites[0].fleet[0].model: unknown model 'S22'"),
        ("pue = 1.1", "pue = 0.9", ":30: sites[0].pue: must be >= 1.0"),
        ('kind = "rt"', 'kind = "flat"', ":36: sites[0].contract.kind: expected 'rt' or 'ppa'"),
        ("count = 32", 'count = "32"', ":45: sites[0].fleet[1].count: expected an integer"),
        ("gpus = [2, 8]", "gpus = [8, 2]", ":56: sites[0].demand.batch.gpus: expected 1.0 <="),
        ("end = 2025-03-10", "end = 2025-03-01", ":10: window.end: must be after start"),
        ("mean_price_usd_per_mwh", "mean_prize", ":19: market.simulator.mean_prize: not a"),
        ("capacity_mw = 2.0", "capacity_mw = inf", ":29: sites[0].capacity_mw: must be a finite"),
        (
            "sla_penalty_usd_per_gpu_hour = 10.0",
            "sla_penalty_usd_per_gpu_hour = nan",
            ":6: sla_penalty_usd_per_gpu_hour: must be a finite number, got nan",
        ),
        (
            "mean_price_usd_per_mwh = 45.0",
            "mean_price_usd_per_mwh = nan",
            ":19: market.simulator.mean_price_usd_per_mwh: must be a finite number",
        ),
        ("H100 = 2.20", "H100 = inf", ":24: market.gpu_spot_usd_per_gpu_hour.H100: must be a fin"),
        ("ramp_mw_per_step = 1.0", "ramp_mw_per_step = inf", ":31: sites[0].ramp_mw_per_step"),
        ("hours = [1.0, 4.0]", "hours = [1.0, inf]", ":57: sites[0].demand.batch.hours: expected"),
        ("warmup_days = 3", "warmup_days = 0.5", ":12: window.warmup_days: must be at least one"),
        (
            "step_minutes = 15",
            "step_minutes = 0.001",
            ":11: window.step_minutes: must be a whole number of seconds (at least 1 s): "
            "0.001 minutes is 0.06 s",
        ),
        ("step_minutes = 15", "step_minutes = 1e-9", ":11: window.step_minutes: must be a whole"),
        ("step_minutes = 15", "step_minutes = 1e15", ":11: window.step_minutes: too large"),
        (
            "deadline_hours = [48.0, 96.0]",
            "deadline_hours = [48.0, 96.0]\nprice_usd_per_gpu_hour = 3.0",
            ":65: sites[0].demand.training.price_usd_per_gpu_hour: batch must pay more",
        ),
        ("seed = 7", "seed = -1", ":5: seed: must be >= 0, got -1"),
        ("seed = 11", "seed = -5", ":16: market.seed: must be >= 0, got -5"),
        ("warmup_days = 3", "warmup_days = 1e12", ":12: window.warmup_days: must be <= 366"),
        (
            "start = 2025-03-03T00:00:00Z",
            "start = 0001-01-02T00:00:00Z",
            ":9: window.start: too early for 3 days of warm-up",
        ),
        ("min_on_minutes = 30", "min_on_minutes = 1e15", ":32: sites[0].min_on_minutes: too"),
        (
            "H100 = 2.20",
            "H10O = 2.20",
            ":24: market.gpu_spot_usd_per_gpu_hour.H10O: not a GPU family "
            "(known: A100, H100, L40S)",
        ),
        (
            "arrivals_per_day = 4.0",
            "arrivals_per_day = 1e12",
            ":55: sites[0].demand.batch.arrivals_per_day: must be <= 10000, got 1e+12",
        ),
        ("gpus = [2, 8]", "gpus = [1e300, 1e300]", ":56: sites[0].demand.batch.gpus: high"),
        ("hours = [1.0, 4.0]", "hours = [1e300, 1e300]", ":57: sites[0].demand.batch.hours: hi"),
        (
            "deadline_hours = [6.0, 18.0]",
            "deadline_hours = [1.0, 1e300]",
            ":58: sites[0].demand.batch.deadline_hours: high must be <= 87660",
        ),
        (
            "end = 2025-03-10T00:00:00Z",
            "end = 2025-03-10T00:00:00",
            ":10: window.end: expected a date-time with a UTC offset (e.g. ...T00:00:00Z), "
            "got 2025-03-10T00:00:00",
        ),
        (
            "spike_size_usd_per_mwh = 600.0",
            "spike_size_usd_per_mwh = 1e308",
            ":21: market.simulator.spike_size_usd_per_mwh: must be <= 1e+06",
        ),
        (
            "end = 2025-03-10T00:00:00Z",
            "end = 9999-12-31T00:00:00Z",
            ":10: window.end: the window is 279,623,616 steps over 2,912,746 days",
        ),
        (
            "step_minutes = 15",
            "step_minutes = 1e5",
            ":12: window.warmup_days: must cover at least one step (69 days, 10:40:00 long)",
        ),
        (
            "peak_gpus = 16",
            "peak_gpus = 4",
            ":49: sites[0].demand.realtime.peak_gpus: must be at least base_gpus (6), got 4",
        ),
        (
            "peak_hour_utc = 20.0",
            "peak_hour_utc = 24.0",
            ":50: sites[0].demand.realtime.peak_hour_utc: must be an hour in [0, 24), got 24",
        ),
        (
            'kind = "rt"\nadder_usd_per_mwh = 4.0',
            'kind = "ppa"\nprice_usd_per_mwh = 30.0\ncommitted_mw = 2.5',
            ":38: sites[0].contract.committed_mw: 2.5 MW is more than the site's capacity_mw (2.0)",
        ),
    ],
)
def test_mistakes_are_reported_with_file_line_and_key(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    assert old in SMALL
    path = write(tmp_path, SMALL.replace(old, new, 1))
    with pytest.raises(DataError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(str(path)) and where in str(caught.value)


def test_a_site_without_a_ramp_limit_has_none(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL.replace("ramp_mw_per_step = 1.0\n", ""))
    assert load_scenario(path).sites[0].ramp_mw_per_step is None


def test_a_step_of_whole_seconds_under_a_minute_is_taken(tmp_path: Path) -> None:
    text = SMALL.replace("step_minutes = 15", "step_minutes = 0.5")
    assert load_scenario(write(tmp_path, text)).step == timedelta(seconds=30)


def test_a_toml_syntax_error_names_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL.replace("seed = 7", "seed = = 7"))
    with pytest.raises(DataError, match=r"scenario.toml:5 column \d+: invalid TOML"):
        load_scenario(path)


def test_missing_market_files_are_named(tmp_path: Path) -> None:
    text = (
        SMALL.replace('kind = "simulated"', 'kind = "replay"\nelectricity = "nowhere.csv"')
        .replace("seed = 11\n", "")
        .replace("[market.simulator]\nmean_price_usd_per_mwh = 45.0\n", "")
    )
    with pytest.raises(DataError, match=r"market.electricity: no such file: .*nowhere.csv"):
        load_scenario(write(tmp_path, text))


def test_a_pool_fee_of_the_whole_payout_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL.replace("seed = 7", "seed = 7\npool_fee = 1.0"))
    with pytest.raises(DataError, match=r"scenario.toml:6: pool_fee: must be below 1"):
        load_scenario(path)


def test_a_site_too_small_for_its_sleeping_miners_is_refused(tmp_path: Path) -> None:
    """500 S21s asleep draw 500 × 25 W × PUE 1.1 = 0.01375 MW: no plan could keep to 0.01."""
    path = write(tmp_path, SMALL.replace("capacity_mw = 2.0", "capacity_mw = 0.01"))
    with pytest.raises(DataError) as caught:
        load_scenario(path)
    assert ":29: sites[0].capacity_mw: 0.01 MW is less than the site's miners draw asleep" in str(
        caught.value
    )
    assert "(0.01375 MW with PUE 1.1)" in str(caught.value)
    # the miners asleep and one woken at eco-low (2170 W): 0.0161 MW
    load_scenario(write(tmp_path, SMALL.replace("capacity_mw = 2.0", "capacity_mw = 0.017")))


def test_a_site_too_small_for_one_device_is_refused(tmp_path: Path) -> None:
    """One H100 SXM busy draws 700 W × PUE 1.1 = 0.00077 MW: 0.0005 MW could never run one."""
    gpus_only = SMALL.replace('[[sites.fleet]]\nmodel = "S21"\ncount = 500\n\n', "")
    path = write(tmp_path, gpus_only.replace("capacity_mw = 2.0", "capacity_mw = 0.0005"))
    with pytest.raises(DataError) as caught:
        load_scenario(path)
    assert ":29: sites[0].capacity_mw: 0.0005 MW cannot run a single H100 SXM (0.00077 MW" in str(
        caught.value
    )
    load_scenario(write(tmp_path, gpus_only.replace("capacity_mw = 2.0", "capacity_mw = 0.0008")))


def test_a_second_site_of_the_same_name_is_refused(tmp_path: Path) -> None:
    """Results are keyed by site name: the second `pilot` would silently replace the first."""
    site = SMALL[SMALL.index("[[sites]]") : SMALL.index("[sites.demand.realtime]")]
    path = write(tmp_path, SMALL + "\n" + site.replace('node = "HB_WEST"', 'node = "HB_NORTH"'))
    with pytest.raises(DataError, match=r":67: sites\[1\].name: 'pilot' is already the name of "):
        load_scenario(path)
    renamed = site.replace('name = "pilot"', 'name = "second"')
    assert [s.name for s in load_scenario(write(tmp_path, SMALL + "\n" + renamed)).sites] == [
        "pilot",
        "second",
    ]


def test_a_minimum_on_time_longer_than_the_window_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, SMALL.replace("min_on_minutes = 30", "min_on_minutes = 20160"))
    assert load_scenario(path).sites[0].min_on_steps == 14 * 96
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        f"{path}:32: sites[0].min_on_minutes: 20160 minutes is longer than the window "
        "(7 days, 0:00:00)"
    ]


def test_a_mistake_in_an_inline_fleet_is_placed_at_its_key(tmp_path: Path) -> None:
    """The README's inline form: the entry has no line of its own, `fleet = [...]` has."""
    tables = SMALL[SMALL.index("[[sites.fleet]]") : SMALL.index("[sites.demand.realtime]")]
    inline = 'fleet = [{ model = "S21", count = 500 }, { model = "H100 SXM", count = -32 }]\n'
    text = SMALL.replace(tables, "").replace(
        "min_off_minutes = 30\n", f"min_off_minutes = 30\n{inline}"
    )
    with pytest.raises(DataError, match=r"scenario.toml:34: sites\[0\].fleet\[1\].count: must"):
        load_scenario(write(tmp_path, text))


def test_the_simulated_market_takes_no_spot_file(tmp_path: Path) -> None:
    table = '[market.gpu_spot_usd_per_gpu_hour.H100]\npath = "scenario.toml"\nprice_column = "p"'
    text = SMALL.replace("[market.gpu_spot_usd_per_gpu_hour]\nH100 = 2.20", table)
    with pytest.raises(DataError, match=r"H100: the simulated market starts from a number"):
        load_scenario(write(tmp_path, text))


def test_the_readme_example_is_a_valid_scenario(tmp_path: Path, shared_data: Path) -> None:
    """The README's shortened example, at the same depth as `examples/` beside the data."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("## Backtest scenarios", 1)[1]
    text = section.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "shared").symlink_to(shared_data.parent)
    (tmp_path / "repo" / "examples").mkdir(parents=True)
    scenario = load_scenario(write(tmp_path / "repo" / "examples", text))
    assert scenario.sites[0].day_ahead_node == "HB_HUBAVG"
    assert [f.count for f in scenario.sites[0].asics] == [7600]
    assert {a.workload_class.value for a in scenario.demand["west-1"].arrivals} == {
        "ai_inference_batch",
        "ai_training",
    }
