"""Terminal output of backtests: a progress bar per strategy, the results table, and stdout
kept for results only (the solver's banner goes to stderr)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import highspy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hcp.backtest.compare import compare
from hcp.backtest.engine import Result, Setup

_PROGRESS_EVERY = 96


def run_with_progress(setup: Setup, names: Sequence[str]) -> list[Result]:
    """`compare` with a Rich progress bar per strategy on stderr."""
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
