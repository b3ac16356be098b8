"""`hcp backtest`: JSON lines, the share-of-oracle table, the HTML report, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hcp.cli.backtest import backtest

EXAMPLES = Path(__file__).parents[2] / "examples"
FIELDS = {
    "strategy",
    "intervals",
    "profit_usd",
    "mining_revenue_usd",
    "gpu_revenue_usd",
    "sellback_revenue_usd",
    "energy_cost_usd",
    "sla_penalty_usd",
    "realtime_unserved_gpu_hours",
    "deadlines_missed",
    "wall_seconds",
    "share_of_oracle",
}


def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command()(backtest)
    return cli


def one_day(tmp_path: Path) -> Path:
    """The synthetic example cut to one day."""
    text = (EXAMPLES / "synthetic-small.toml").read_text()
    path = tmp_path / "day.toml"
    path.write_text(text.replace("end = 2025-03-10T00:00:00Z", "end = 2025-03-04T00:00:00Z"))
    return path


def test_json_prints_one_object_per_strategy_per_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), [str(one_day(tmp_path)), "--json", "--strategy", "all"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["strategy"] for line in lines] == ["always_on", "breakeven", "mpc", "oracle"]
    for line in lines:
        assert set(line) >= FIELDS and line["intervals"] == 96
    assert lines[-1]["share_of_oracle"] == 1.0
    assert all(line["profit_usd"] <= lines[-1]["profit_usd"] + 1e-6 for line in lines)
    assert "of oracle" in result.stderr  # the table, kept off stdout


def test_one_strategy_prints_a_table_and_writes_a_report(tmp_path: Path) -> None:
    folder = tmp_path / "report"
    args = [str(one_day(tmp_path)), "--strategy", "breakeven", "--report", str(folder)]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert "breakeven" in result.stdout
    page = (folder / "report.html").read_text()
    assert page.count("<svg") == 3 and "Cumulative profit" in page and "GPU spot" in page


def test_an_unknown_strategy_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), [str(one_day(tmp_path)), "--strategy", "greedy"])
    assert result.exit_code == 2 and "unknown strategy 'greedy'" in result.output


def test_a_bad_scenario_exits_2_naming_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text((EXAMPLES / "synthetic-small.toml").read_text().replace("pue = 1.1", "pue = 0"))
    result = CliRunner().invoke(app(), [str(path), "--json"])
    assert result.exit_code == 2
    assert f"{path}:30: sites[0].pue: must be >= 1.0" in result.stderr
    assert result.stdout == ""


def never_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    def replay(*args: object) -> None:
        raise AssertionError("replayed before checking --report")

    monkeypatch.setattr("hcp.cli.backtest.run_with_progress", replay)


def test_a_report_folder_where_a_file_is_fails_before_the_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    never_replay(monkeypatch)
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for folder, reason in ((taken, "Not a directory"), (taken / "below", "Not a directory")):
        result = CliRunner().invoke(app(), [str(one_day(tmp_path)), "--report", str(folder)])
        assert result.exit_code == 2, result.output
        assert f"hcp: --report {folder}: cannot write the report: {reason}" in result.stderr
    (tmp_path / "busy" / "report.html").mkdir(parents=True)
    result = CliRunner().invoke(app(), [str(one_day(tmp_path)), "--report", str(tmp_path / "busy")])
    assert result.exit_code == 2 and "Is a directory" in result.stderr


def test_a_replay_that_stops_leaves_no_report_folders_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("hcp.cli.backtest.run_with_progress", interrupted)
    folder = tmp_path / "deep" / "out"
    result = CliRunner().invoke(app(), [str(one_day(tmp_path)), "--report", str(folder)])
    assert result.exit_code != 0
    assert not (tmp_path / "deep").exists()


def test_the_report_shows_sell_back_under_a_ppa(tmp_path: Path) -> None:
    """At 150 USD/MWh on average, selling the committed MW back beats mining with them."""
    text = (
        one_day(tmp_path)
        .read_text()
        .replace("mean_price_usd_per_mwh = 45.0", "mean_price_usd_per_mwh = 150.0")
        .replace(
            'kind = "rt"\nadder_usd_per_mwh = 4.0',
            'kind = "ppa"\nprice_usd_per_mwh = 30.0\ncommitted_mw = 2.0',
        )
    )
    path = tmp_path / "ppa.toml"
    path.write_text(text)
    folder = tmp_path / "report"
    args = [str(path), "--json", "--strategy", "breakeven", "--report", str(folder)]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    sold = json.loads(result.stdout)["sellback_revenue_usd"]
    assert sold > 1_000
    page = (folder / "report.html").read_text()
    assert "<th>sell-back</th>" in page and f"<td>{sold:,.0f}</td>" in page
    assert "sold back</text>" in page  # the MW chart's legend
