"""The seed's profitability calculation: is one GPU or one miner worth running right now?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hcp.domain.catalog import GPU_MODELS, asic_model, gpu_families, gpu_models_of_family
from hcp.domain.devices import AsicProfile, GpuModel
from hcp.domain.errors import ValidationError
from hcp.domain.market import MarketSnapshot
from hcp.domain.workloads import WorkloadClass
from hcp.economics.bitcoin import snapshot_hashprice
from hcp.economics.energy import energy_cost_usd, revenue_per_mwh
from hcp.economics.gpu import DEFAULT_PRICE_SHEET, GpuPriceSheet, gpu_hour_value_usd
from hcp.economics.mining import asic_revenue_usd

ResourceType = Literal["GPU", "ASIC"]
_RESOURCE_TYPES: tuple[str, ...] = ("GPU", "ASIC")
_SECONDS_PER_HOUR = 3_600


@dataclass(frozen=True, slots=True)
class ProfitabilityRequest:
    """One device to evaluate for `duration_hours`.

    GPU: `gpu_type` is a catalog model (`H100 SXM`) or a family (`H100`, meaning its flagship);
    `workload_type` None means renting the GPU to the spot market. ASIC: `asic_model` run at
    `profile`; `workload_type` is ignored. `power_draw_w` (W) and `hashrate_ths` (TH/s) override
    the catalog's figures when given.
    """

    resource_type: ResourceType
    workload_type: WorkloadClass | None = None
    power_draw_w: float | None = None
    gpu_type: str = "H100"
    asic_model: str = "S21"
    profile: str = "stock"
    hashrate_ths: float | None = None
    duration_hours: float = 1.0
    pue: float = 1.0


@dataclass(frozen=True, slots=True)
class Profitability:
    """Money in USD over the request's duration; score 0-100 is the net margin in percent.

    `breakeven_usd_per_mwh` is the electricity price at which net profit would be zero.
    """

    score: float
    expected_revenue: float
    estimated_cost: float
    net_profit: float
    recommendation: str
    breakeven_usd_per_mwh: float


def calculate_profitability(
    req: ProfitabilityRequest,
    snapshot: MarketSnapshot,
    node: str,
    sheet: GpuPriceSheet = DEFAULT_PRICE_SHEET,
) -> Profitability:
    """Revenue, electricity cost at `node` and net profit in USD of running one device.

    Raises ValidationError naming the field for bad input, KeyError when the snapshot has no
    price for `node` (a configuration fault, not the caller's).
    """
    check_request(req)
    price_usd_per_mwh = snapshot.electricity(node)
    if req.resource_type == "GPU":
        return _gpu_profitability(req, snapshot, price_usd_per_mwh, sheet)
    return _asic_profitability(req, snapshot, price_usd_per_mwh)


def check_request(req: ProfitabilityRequest) -> None:
    """Raise ValidationError naming the first field of `req` that breaks a rule."""
    if req.resource_type not in _RESOURCE_TYPES:
        raise ValidationError("resource_type", f"must be one of {', '.join(_RESOURCE_TYPES)}")
    for field, value in (
        ("power_draw_w", req.power_draw_w),
        ("hashrate_ths", req.hashrate_ths),
        ("duration_hours", req.duration_hours),
    ):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValidationError(field, f"must be a finite number >= 0, got {value}")
    if not (math.isfinite(req.pue) and req.pue >= 1.0):
        raise ValidationError("pue", f"must be a finite number >= 1.0, got {req.pue}")


def resolve_gpu(gpu_type: str) -> GpuModel:
    """The catalog GPU named `gpu_type`, a model name or a family (then its flagship)."""
    if gpu_type in GPU_MODELS:
        return GPU_MODELS[gpu_type]
    family_models = gpu_models_of_family(gpu_type)
    if family_models:
        return family_models[0]
    families = ", ".join(sorted(gpu_families()))
    models = ", ".join(GPU_MODELS)
    raise ValidationError(
        "gpu_type", f"unknown GPU type {gpu_type!r} (families: {families}; models: {models})"
    )


def resolve_asic_profile(req: ProfitabilityRequest) -> AsicProfile:
    """The request's ASIC operating point: the catalog profile with the request's overrides."""
    try:
        model = asic_model(req.asic_model)
    except KeyError as e:
        raise ValidationError("asic_model", str(e.args[0])) from None
    try:
        profile = model.profile(req.profile)
    except KeyError as e:
        raise ValidationError("profile", str(e.args[0])) from None
    return AsicProfile(
        profile.name,
        hashrate_ths=profile.hashrate_ths if req.hashrate_ths is None else req.hashrate_ths,
        power_w=profile.power_w if req.power_draw_w is None else req.power_draw_w,
    )


def _gpu_profitability(
    req: ProfitabilityRequest,
    snapshot: MarketSnapshot,
    price_usd_per_mwh: float,
    sheet: GpuPriceSheet,
) -> Profitability:
    gpu = resolve_gpu(req.gpu_type)
    spot_usd_per_gpu_hour = snapshot.gpu_spot(gpu.family)
    if req.workload_type is None:
        revenue_usd_per_hour = spot_usd_per_gpu_hour
    else:
        revenue_usd_per_hour = gpu_hour_value_usd(
            req.workload_type, gpu.family, sheet, spot_usd_per_gpu_hour
        )
    power_w = gpu.busy_power_w if req.power_draw_w is None else req.power_draw_w
    return _summarise(req, revenue_usd_per_hour, power_w, price_usd_per_mwh, "allocate", "defer")


def _asic_profitability(
    req: ProfitabilityRequest, snapshot: MarketSnapshot, price_usd_per_mwh: float
) -> Profitability:
    profile = resolve_asic_profile(req)
    revenue_usd_per_hour = asic_revenue_usd(
        profile.hashrate_ths, snapshot_hashprice(snapshot), _SECONDS_PER_HOUR
    )
    return _summarise(
        req, revenue_usd_per_hour, profile.power_w, price_usd_per_mwh, "mine", "curtail"
    )


def _summarise(
    req: ProfitabilityRequest,
    revenue_usd_per_hour: float,
    power_w: float,
    price_usd_per_mwh: float,
    run: str,
    stop: str,
) -> Profitability:
    """Totals over the request's duration; recommend `run` only when it strictly makes money."""
    revenue_usd = revenue_usd_per_hour * req.duration_hours
    cost_usd = energy_cost_usd(power_w / 1_000, req.duration_hours, price_usd_per_mwh, req.pue)
    net_usd = revenue_usd - cost_usd
    return Profitability(
        score=margin_score(revenue_usd, net_usd),
        expected_revenue=revenue_usd,
        estimated_cost=cost_usd,
        net_profit=net_usd,
        recommendation=run if net_usd > 0 else stop,
        breakeven_usd_per_mwh=revenue_per_mwh(revenue_usd_per_hour, power_w / 1_000, req.pue),
    )


def margin_score(revenue_usd: float, net_usd: float) -> float:
    """Net margin in percent, clipped to 0-100; 0 when there is no revenue."""
    if revenue_usd <= 0:
        return 0.0
    return min(100.0, max(0.0, 100.0 * net_usd / revenue_usd))
