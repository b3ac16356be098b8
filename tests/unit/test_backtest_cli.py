"""`hcp backtest`: JSON lines, the share-of-oracle table, the HTML report, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

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
