"""Winter Storm Uri replayed with every strategy (real data; slow: about ten seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcp.backtest.compare import compare, share_of_oracle
from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.scenario import load_scenario
from hcp.optimizer.strategies import STRATEGY_NAMES

URI = Path(__file__).parents[2] / "examples" / "ercot-west-uri-2021.toml"


@pytest.mark.slow
@pytest.mark.data
def test_through_uri_the_oracle_bounds_every_strategy_and_curtailing_pays(
    shared_data: Path,
) -> None:
    scenario = load_scenario(URI)
    results = compare(setup_for(scenario, load_market(scenario)), STRATEGY_NAMES)
    shares = share_of_oracle(results)
    assert all(share is not None and share <= 1.0 + 1e-9 for share in shares.values())
    always_on = shares["always_on"]
    assert always_on is not None and always_on < 0  # mining through $9,000/MWh loses money
    assert shares["breakeven"] is not None and shares["breakeven"] > 0.9
    assert shares["mpc"] is not None and shares["mpc"] > shares["breakeven"]
    assert all(r.ledger.fallbacks == 0 for r in results)
