"""`make bench-economics`: every strategy on a year of ERCOT West (2024) and on the Winter
Storm Uri window (2021-02-07..28), from the examples/ scenarios and ../shared/data.

Prints each scenario's table, then ends with one JSON line per strategy and scenario: the
`hcp backtest --json` fields plus `scenario` and `share_of_oracle`. Other scenario files may
be given as arguments. Targets (issue 3): mpc >= 99 % of the oracle's profit, mpc >= breakeven
+ 5 points, a year of mpc <= 60 s, a year of the oracle <= 10 minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from hcp.backtest.compare import share_of_oracle
from hcp.backtest.console import (
    console,
    results_table,
    route_solver_banner_to_stderr,
    run_with_progress,
)
from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.scenario import load_scenario
from hcp.optimizer.strategies import STRATEGY_NAMES

EXAMPLES = Path(__file__).parents[3] / "examples"
SCENARIOS = ("ercot-west-2024.toml", "ercot-west-uri-2021.toml")


def main(argv: list[str]) -> int:
    """Run the benchmark over `argv` scenario files (default: the two ERCOT examples)."""
    paths = [Path(a) for a in argv] or [EXAMPLES / name for name in SCENARIOS]
    route_solver_banner_to_stderr()
    lines = []
    for path in paths:
        scenario = load_scenario(path)
        results = run_with_progress(setup_for(scenario, load_market(scenario)), STRATEGY_NAMES)
        shares = share_of_oracle(results)
        console().print(results_table(scenario.name, results, shares))
        for result in results:
            share = {"share_of_oracle": shares[result.strategy]}
            lines.append({**result.summary(), "scenario": scenario.name, **share})
    for line in lines:
        print(orjson.dumps(line).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
