"""The oracle on a fleet small enough for whole devices (a MILP) but too hard for branch and
cut within its time limit: it plans that chunk by the LP relaxation, not the safe plan."""

from __future__ import annotations

import time
from pathlib import Path

from hcp.backtest.engine import initial_state
from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.scenario import load_scenario
from hcp.optimizer.inputs import SiteNow
from hcp.optimizer.plan import SolveStatus
from hcp.optimizer.strategies import Oracle, OracleSettings
from hcp.optimizer.world import view_at

# 150 S21s and 32 H100s with 30-minute minimum on/off times: HiGHS's branch and cut went past
# 300 s on this day (80 S21s and 16 H100s take 0.1 s).
PILOT = """name = "synthetic-small"
seed = 7
sla_penalty_usd_per_gpu_hour = 10.0

[window]
start = 2025-03-03T00:00:00Z
end = 2025-03-04T00:00:00Z
step_minutes = 15
warmup_days = 3

[market]
kind = "simulated"
seed = 11

[market.simulator]
mean_price_usd_per_mwh = 45.0
spike_probability_per_hour = 0.02
spike_size_usd_per_mwh = 600.0

[market.gpu_spot_usd_per_gpu_hour]
H100 = 2.20

[[sites]]
name = "pilot"
node = "HB_WEST"
capacity_mw = 0.7
pue = 1.1
ramp_mw_per_step = 1.0
min_on_minutes = 30
min_off_minutes = 30

[sites.contract]
kind = "rt"
adder_usd_per_mwh = 4.0

[[sites.fleet]]
model = "S21"
count = 150

[[sites.fleet]]
model = "H100 SXM"
count = 32

[sites.demand.realtime]
base_gpus = 6
peak_gpus = 16
peak_hour_utc = 20.0
weekend_factor = 0.8
noise = 0.15

[sites.demand.batch]
arrivals_per_day = 4.0
gpus = [2, 8]
hours = [1.0, 4.0]
deadline_hours = [6.0, 18.0]

[sites.demand.training]
arrivals_per_day = 0.5
gpus = [8, 16]
hours = [12.0, 36.0]
deadline_hours = [48.0, 96.0]
"""


def test_a_milp_out_of_time_gives_way_to_its_lp_relaxation(tmp_path: Path) -> None:
    path = tmp_path / "pilot.toml"
    path.write_text(PILOT)
    scenario = load_scenario(path)
    setup = setup_for(scenario, load_market(scenario))
    site = setup.sites[0]
    oracle = Oracle(setup.foresight(), setup.terms, OracleSettings(milp_time_limit_s=2.0))
    now = {site.name: SiteNow(site, initial_state(site), {"H100": 6})}
    started = time.perf_counter()
    decision = oracle.decide(view_at(setup.market, setup.first, now))
    assert decision.status is SolveStatus.OPTIMAL, decision.reason
    assert time.perf_counter() - started < 60
    assert sum(decision.allocations[site.name].asics["S21"].values()) > 0
