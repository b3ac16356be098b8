"""Options whose value the platform cannot run with are refused up front, naming the option:
a speed past what a scaled clock can keep (its datetimes overflow), a negative market seed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hcp.cli.main import app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("command", [["up"], ["controller"], ["sim", "market", "--count", "1"]])
@pytest.mark.parametrize("speed", ["inf", "nan", "1e300", "100001"])
def test_a_speed_beyond_the_maximum_is_refused(command: list[str], speed: str) -> None:
    code, output = run(*command, "--speed", speed)
    assert code == 2
    assert "Invalid value for '--speed'" in output and "100000" in output


def test_a_negative_market_seed_is_refused() -> None:
    code, output = run("sim", "market", "--seed", "-1", "--count", "1")
    assert code == 2
    assert "Invalid value for '--seed'" in output
