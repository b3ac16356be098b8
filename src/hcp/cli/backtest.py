"""`hcp backtest SCENARIO.toml`: replay a scenario with one or all strategies.

Results go to stdout (a table, or one JSON object per strategy with `--json`); the progress
bar and, with `--json`, the share-of-oracle table go to stderr so stdout stays parseable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer

from hcp.backtest.compare import share_of_oracle, strategy_names
from hcp.backtest.console import (
    console,
    results_table,
    route_solver_banner_to_stderr,
    run_with_progress,
)
from hcp.backtest.engine import Result, Setup
from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.report import report_path, write_report
from hcp.backtest.scenario import load_scenario
from hcp.domain.errors import DataError


def backtest(
    scenario: Annotated[Path, typer.Argument(help="scenario file (TOML)", dir_okay=False)],
    strategy: Annotated[str, typer.Option(help="always_on, breakeven, mpc, oracle or all")] = "all",
    json_output: Annotated[
        bool, typer.Option("--json", help="one JSON object per strategy per line on stdout")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="write an HTML report (report.html) into this folder")
    ] = None,
) -> None:
    """Replay SCENARIO with each strategy and account its profit at the real prices."""
    try:
        names = strategy_names(strategy)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--strategy") from None
    setup, title = _load(scenario)
    if report is not None:
        _check_report_folder(report)
    route_solver_banner_to_stderr()
    results = run_with_progress(setup, names)
    shares = share_of_oracle(results)
    if json_output:
        for result in results:
            line = {**result.summary(), "share_of_oracle": shares[result.strategy]}
            typer.echo(orjson.dumps(line).decode())
    if not json_output or len(results) > 1:
        console(stderr=json_output).print(results_table(title, results, shares))
    if report is not None:
        path = _write_report(report, title, results)
        console(stderr=True).print(f"report: {path}")


def _load(path: Path) -> tuple[Setup, str]:
    try:
        scenario = load_scenario(path)
        return setup_for(scenario, load_market(scenario)), scenario.name
    except DataError as exc:
        typer.secho(f"hcp: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


def _check_report_folder(folder: Path) -> None:
    """Check the --report folder now, so that a bad one fails before the replay, not after."""
    try:
        report_path(folder)
    except OSError as exc:
        _report_failed(folder, exc)


def _write_report(folder: Path, title: str, results: Sequence[Result]) -> Path:
    """Write the report of `results` into the --report folder; its path."""
    try:
        return write_report(folder, title, results)
    except OSError as exc:
        _report_failed(folder, exc)


def _report_failed(folder: Path, exc: OSError) -> NoReturn:
    """Exit 2 with what stopped the report (no such folder, a file in the way, no permission)."""
    where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != folder else ""
    message = f"hcp: --report {folder}: cannot write the report: {exc.strerror or exc}{where}"
    typer.secho(message, err=True, fg="red")
    raise typer.Exit(2) from None
