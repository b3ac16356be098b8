"""ASIC mining: revenue of a hashrate, profit of a profile, and its breakeven power price."""

from __future__ import annotations

from hcp.domain.devices import AsicProfile
from hcp.economics.energy import energy_cost_usd, revenue_per_mwh

# FPPS (full pay per share) pools pay the expected value of every share, fees included, and
# carry the luck risk themselves; large FPPS pools charged about 2 % in 2024-2025, so that is
# the default. A site with its own pool contract passes its own fee.
DEFAULT_POOL_FEE: float = 0.02

_SECONDS_PER_DAY = 86_400
_SECONDS_PER_HOUR = 3_600


def asic_revenue_usd(
    hashrate_ths: float,
    hashprice_usd_per_ths_day: float,
    seconds: float,
    pool_fee: float = DEFAULT_POOL_FEE,
) -> float:
    """Mining revenue in USD of `hashrate_ths` TH/s over `seconds`, after the pool fee."""
    if not 0.0 <= pool_fee < 1.0:
        raise ValueError(f"pool_fee must be in [0, 1), got {pool_fee}")
    days = seconds / _SECONDS_PER_DAY
    return hashrate_ths * hashprice_usd_per_ths_day * days * (1.0 - pool_fee)


def asic_profit_usd_per_hour(
    profile: AsicProfile,
    hashprice_usd_per_ths_day: float,
    price_usd_per_mwh: float,
    pue: float = 1.0,
    pool_fee: float = DEFAULT_POOL_FEE,
) -> float:
    """Profit in USD per hour of one miner running `profile`: pool payout minus electricity."""
    revenue_usd = asic_revenue_usd(
        profile.hashrate_ths, hashprice_usd_per_ths_day, _SECONDS_PER_HOUR, pool_fee
    )
    cost_usd = energy_cost_usd(profile.power_w / 1_000, 1.0, price_usd_per_mwh, pue)
    return revenue_usd - cost_usd


def breakeven_usd_per_mwh(
    profile: AsicProfile,
    hashprice_usd_per_ths_day: float,
    pue: float = 1.0,
    pool_fee: float = DEFAULT_POOL_FEE,
) -> float:
    """Electricity price in USD/MWh at which `profile` makes zero profit.

    That is its revenue per MWh bought, PUE included: mine below it, curtail above it.
    """
    revenue_usd_per_hour = asic_revenue_usd(
        profile.hashrate_ths, hashprice_usd_per_ths_day, _SECONDS_PER_HOUR, pool_fee
    )
    return revenue_per_mwh(revenue_usd_per_hour, profile.power_w / 1_000, pue)
