"""Several strategies over the same setup, and each one's profit as a share of the oracle's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hcp.backtest.engine import Result, Setup, make_strategy, run_backtest
from hcp.optimizer.strategies import STRATEGY_NAMES


def strategy_names(choice: str) -> tuple[str, ...]:
    """The strategies meant by `choice`: one name, or `all`; ValueError for anything else."""
    if choice == "all":
        return STRATEGY_NAMES
    if choice in STRATEGY_NAMES:
        return (choice,)
    raise ValueError(f"unknown strategy {choice!r} (choose from {', '.join(STRATEGY_NAMES)}, all)")


def compare(
    setup: Setup,
    names: Sequence[str],
    on_progress: Callable[[str, int], None] | None = None,
) -> list[Result]:
    """Replay `setup` once per strategy; `on_progress(name, intervals_done)` as it goes."""
    results = []
    for name in names:
        report = None if on_progress is None else _progress_of(name, on_progress)
        results.append(run_backtest(setup, make_strategy(name, setup), report))
    return results


def _progress_of(name: str, on_progress: Callable[[str, int], None]) -> Callable[[int], None]:
    return lambda done: on_progress(name, done)


def share_of_oracle(results: Sequence[Result]) -> dict[str, float | None]:
    """Each strategy's profit over the oracle's (None without an oracle with a positive profit)."""
    oracle = next((r.ledger.profit_usd for r in results if r.strategy == "oracle"), None)
    if oracle is None or oracle <= 0:
        return {r.strategy: None for r in results}
    return {r.strategy: float(r.ledger.profit_usd / oracle) for r in results}
