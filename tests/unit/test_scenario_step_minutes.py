"""A market step that is not a whole number of seconds is refused up front, naming where:
the scenario file's `window.step_minutes` and `hcp sim market --step-minutes`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcp.backtest.scenario import load_scenario
from hcp.cli.main import app
from hcp.domain.errors import DataError

EXAMPLES = Path(__file__).parents[2] / "examples"


def market(*args: str) -> tuple[int, str]:
    """`hcp sim market ARGS`: exit code and output (rich's boxes undone)."""
    result = CliRunner().invoke(app, ["sim", "market", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("minutes", ["0.001", "1.005"])
def test_the_scenario_names_step_minutes_and_its_line(tmp_path: Path, minutes: str) -> None:
    text = (EXAMPLES / "synthetic-small.toml").read_text()
    path = tmp_path / "step.toml"
    path.write_text(text.replace("step_minutes = 15", f"step_minutes = {minutes}"))
    with pytest.raises(DataError, match=r"step.toml:11: window.step_minutes: must be a whole"):
        load_scenario(path)


@pytest.mark.parametrize(("minutes", "why"), [("0.01", "0.01 minutes is 0.6 s"), ("inf", "inf")])
def test_sim_market_refuses_a_step_it_cannot_take(minutes: str, why: str) -> None:
    code, output = market("--step-minutes", minutes, "--count", "1")
    assert code == 2
    assert "Invalid value for --step-minutes" in output and why in output


def test_sim_market_takes_a_step_of_whole_seconds() -> None:
    result = CliRunner().invoke(app, ["sim", "market", "--step-minutes", "0.5", "--count", "1"])
    assert result.exit_code == 0, result.output
    assert "HB_WEST" in json.loads(result.stdout)["electricity_usd_per_mwh"]
