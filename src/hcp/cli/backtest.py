"""`hcp backtest SCENARIO.toml`: replay a scenario with one or all strategies.

Results go to stdout (a table, or one JSON object per strategy with `--json`); the progress
bar and, with `--json`, the share-of-oracle table go to stderr so stdout stays parseable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import highspy
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hcp.backtest.compare import compare, share_of_oracle, strategy_names
from hcp.backtest.engine import Result, Setup
from hcp.backtest.report import write_report
from hcp.backtest.scenario import load_market, load_scenario, setup_for
from hcp.domain.errors import DataError

_PROGRESS_EVERY = 96


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
    route_solver_banner_to_stderr()
    results = _run(setup, names)
    shares = share_of_oracle(results)
    if json_output:
        for result in results:
            line = {**result.summary(), "share_of_oracle": shares[result.strategy]}
            typer.echo(orjson.dumps(line).decode())
    if not json_output or len(results) > 1:
        console(stderr=json_output).print(results_table(title, results, shares))
    if report is not None:
        path = write_report(report, title, results)
        console(stderr=True).print(f"report: {path}")


def _load(path: Path) -> tuple[Setup, str]:
    try:
        scenario = load_scenario(path)
        return setup_for(scenario, load_market(scenario)), scenario.name
    except DataError as exc:
        typer.secho(f"hcp: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


def _run(setup: Setup, names: Sequence[str]) -> list[Result]:
    columns = (TextColumn("{task.description:10}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console(stderr=True)) as progress:
        tasks = {name: progress.add_task(name, total=setup.intervals) for name in names}

        def advance(name: str, done: int) -> None:
            if done % _PROGRESS_EVERY == 0 or done == setup.intervals:
                progress.update(tasks[name], completed=done)

        return compare(setup, names, advance)


def results_table(title: str, results: Sequence[Result], shares: dict[str, float | None]) -> Table:
    """Each strategy's money (thousand USD), service, wall time and share of the oracle."""
    table = Table(title=title)
    table.add_column("strategy")
    for column in ("profit k$", "of oracle", "mining k$", "GPU k$", "sell-back k$"):
        table.add_column(column, justify="right")
    for column in ("energy k$", "penalties k$", "unserved GPU-h", "missed", "wall s"):
        table.add_column(column, justify="right")
    for r in results:
        money, share = r.ledger, shares[r.strategy]
        table.add_row(
            r.strategy,
            f"{money.profit_usd / 1e3:,.1f}",
            "" if share is None else f"{share:.2%}",
            f"{money.mining_revenue_usd / 1e3:,.1f}",
            f"{money.gpu_revenue_usd / 1e3:,.1f}",
            f"{money.sellback_revenue_usd / 1e3:,.1f}",
            f"{money.energy_cost_usd / 1e3:,.1f}",
            f"{money.sla_penalty_usd / 1e3:,.1f}",
            f"{money.realtime_unserved_gpu_hours:,.0f}",
            str(money.deadlines_missed),
            f"{r.wall_seconds:.1f}",
        )
    return table


def console(stderr: bool = False) -> Console:
    """A Rich console wide enough for the results table even when not on a terminal."""
    out = Console(stderr=stderr)
    if not out.is_terminal:
        out.width = max(out.width, 130)
    return out


def route_solver_banner_to_stderr() -> None:
    """HiGHS prints a banner on stdout the first time a solver is made in a process; make that
    first one with stdout pointed at stderr, so stdout carries only results."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
