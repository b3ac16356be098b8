"""Pure economics: hashprice, revenue and cost, profitability, breakeven. No I/O, no clock."""

from hcp.economics.bitcoin import (
    BLOCKS_PER_DAY,
    block_subsidy_btc,
    btc_per_ths_day,
    hashprice_usd_per_ths_day,
    snapshot_hashprice,
    subsidy_changes,
)
from hcp.economics.energy import energy_cost_usd
from hcp.economics.gpu import (
    DEFAULT_PRICE_SHEET,
    GpuPriceSheet,
    gpu_hour_value_usd,
    gpu_revenue_usd,
)
from hcp.economics.mining import (
    DEFAULT_POOL_FEE,
    asic_profit_usd_per_hour,
    asic_revenue_usd,
    breakeven_usd_per_mwh,
)
from hcp.economics.profitability import (
    Profitability,
    ProfitabilityRequest,
    calculate_profitability,
)

__all__ = [
    "BLOCKS_PER_DAY",
    "DEFAULT_POOL_FEE",
    "DEFAULT_PRICE_SHEET",
    "GpuPriceSheet",
    "Profitability",
    "ProfitabilityRequest",
    "asic_profit_usd_per_hour",
    "asic_revenue_usd",
    "block_subsidy_btc",
    "breakeven_usd_per_mwh",
    "btc_per_ths_day",
    "calculate_profitability",
    "energy_cost_usd",
    "gpu_hour_value_usd",
    "gpu_revenue_usd",
    "hashprice_usd_per_ths_day",
    "snapshot_hashprice",
    "subsidy_changes",
]
