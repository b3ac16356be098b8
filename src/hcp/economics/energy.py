"""Electricity: energy drawn from the grid and what it costs."""

from __future__ import annotations


def energy_mwh(power_kw: float, hours: float, pue: float = 1.0) -> float:
    """Energy in MWh bought from the grid to run `power_kw` of IT load for `hours`.

    PUE (>= 1) scales IT load up to facility load: cooling and conversion losses are paid for too.
    """
    if pue < 1.0:
        raise ValueError(f"pue must be at least 1.0, got {pue}")
    return power_kw * pue * hours / 1_000


def energy_cost_usd(
    power_kw: float, hours: float, price_usd_per_mwh: float, pue: float = 1.0
) -> float:
    """Cost in USD of running `power_kw` of IT load for `hours` at `price_usd_per_mwh`.

    Negative prices give a negative cost: at times the grid pays consumers to take power.
    """
    return energy_mwh(power_kw, hours, pue) * price_usd_per_mwh


def revenue_per_mwh(revenue_usd_per_hour: float, power_kw: float, pue: float = 1.0) -> float:
    """Revenue in USD per MWh bought: the electricity price at which a load breaks even.

    Infinite when the load draws no power (it never pays for electricity).
    """
    mwh_per_hour = energy_mwh(power_kw, 1.0, pue)
    if mwh_per_hour == 0:
        return float("inf")
    return revenue_usd_per_hour / mwh_per_hour
