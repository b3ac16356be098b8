"""The device catalog: real ASIC and GPU models as data, each figure with its source.

Sources are named beside each figure:
- "spec sheet": the manufacturer's published specification (Bitmain product page / spec sheet,
  NVIDIA datasheet) for the stock operating point, memory and maximum board power.
- "assumption": a figure we chose because no single authoritative public number exists, kept
  physically plausible and explained. Underclocked and overclocked ASIC profiles are assumptions
  shaped like the published tuning results of aftermarket firmware (LuxOS, Braiins OS): lowering
  frequency lets the voltage drop too, and power falls faster than hashrate, so J/TH improves;
  overclocking needs more voltage, so J/TH worsens.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hcp.domain.devices import AsicModel, AsicProfile, GpuModel

# Profile names shared by every ASIC model, most to least efficient.
ECO_LOW, ECO, STOCK, TURBO = "eco-low", "eco", "stock", "turbo"

_S21 = AsicModel(
    name="S21",
    manufacturer="Bitmain",
    profiles=(
        AsicProfile(ECO_LOW, hashrate_ths=140.0, power_w=2_170.0),  # assumption: 15.5 J/TH
        AsicProfile(ECO, hashrate_ths=170.0, power_w=2_805.0),  # assumption: 16.5 J/TH
        AsicProfile(STOCK, hashrate_ths=200.0, power_w=3_500.0),  # spec sheet: 17.5 J/TH
        AsicProfile(TURBO, hashrate_ths=230.0, power_w=4_370.0),  # assumption: 19.0 J/TH
    ),
    stock_profile=STOCK,
    # assumption: control board and fans idling with the hash boards off.
    sleep_power_w=25.0,
    # assumption: boards re-tune and chips warm up for a few minutes before full hashrate.
    wake_seconds=240.0,
)

_S21_HYDRO = AsicModel(
    name="S21 Hydro",
    manufacturer="Bitmain",
    profiles=(
        AsicProfile(ECO_LOW, hashrate_ths=235.0, power_w=3_290.0),  # assumption: 14.0 J/TH
        AsicProfile(ECO, hashrate_ths=285.0, power_w=4_275.0),  # assumption: 15.0 J/TH
        AsicProfile(STOCK, hashrate_ths=335.0, power_w=5_360.0),  # spec sheet: 16.0 J/TH
        AsicProfile(TURBO, hashrate_ths=380.0, power_w=6_650.0),  # assumption: 17.5 J/TH
    ),
    stock_profile=STOCK,
    # assumption: like the S21; the coolant pumps belong to the site, not to the miner.
    sleep_power_w=25.0,
    # assumption: a bigger board set and a coolant loop to bring back to temperature.
    wake_seconds=300.0,
)

_S19_XP = AsicModel(
    name="S19 XP",
    manufacturer="Bitmain",
    profiles=(
        AsicProfile(ECO_LOW, hashrate_ths=100.0, power_w=1_900.0),  # assumption: 19.0 J/TH
        AsicProfile(ECO, hashrate_ths=120.0, power_w=2_400.0),  # assumption: 20.0 J/TH
        AsicProfile(STOCK, hashrate_ths=140.0, power_w=3_010.0),  # spec sheet: 21.5 J/TH
        AsicProfile(TURBO, hashrate_ths=155.0, power_w=3_565.0),  # assumption: 23.0 J/TH
    ),
    stock_profile=STOCK,
    sleep_power_w=20.0,  # assumption: an older, smaller control board than the S21's
    wake_seconds=300.0,  # assumption: older firmware re-tunes more slowly
)

ASIC_MODELS: Mapping[str, AsicModel] = MappingProxyType(
    {m.name: m for m in (_S21, _S21_HYDRO, _S19_XP)}
)

# Busy power is the datasheet's maximum board power (TDP), which a loaded GPU sits near.
# Idle power is an assumption: what nvidia-smi typically shows for a powered, unloaded card.
# Within a family the first model listed is its flagship (the default when only the family is
# known, e.g. a workload that asks for "H100").
_GPUS = (
    GpuModel("H100 SXM", family="H100", busy_power_w=700.0, idle_power_w=70.0, memory_gb=80),
    GpuModel("H100 PCIe", family="H100", busy_power_w=350.0, idle_power_w=50.0, memory_gb=80),
    GpuModel("A100 SXM", family="A100", busy_power_w=400.0, idle_power_w=55.0, memory_gb=80),
    GpuModel("L40S", family="L40S", busy_power_w=350.0, idle_power_w=35.0, memory_gb=48),
)
# Sources of busy_power_w and memory_gb: NVIDIA H100 datasheet (SXM5 700 W, PCIe 350 W, 80 GB),
# A100 80GB datasheet (SXM 400 W, 80 GB), L40S datasheet (350 W, 48 GB GDDR6).

GPU_MODELS: Mapping[str, GpuModel] = MappingProxyType({g.name: g for g in _GPUS})


def asic_model(name: str) -> AsicModel:
    """The ASIC model called `name`; KeyError names the known models."""
    try:
        return ASIC_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown ASIC model {name!r} (known: {', '.join(ASIC_MODELS)})") from None


def gpu_model(name: str) -> GpuModel:
    """The GPU model called `name`; KeyError names the known models."""
    try:
        return GPU_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown GPU model {name!r} (known: {', '.join(GPU_MODELS)})") from None


def gpu_families() -> frozenset[str]:
    """Every GPU family in the catalog, as customers name them (`H100`, `A100`, ...)."""
    return frozenset(g.family for g in GPU_MODELS.values())


def gpu_models_of_family(family: str) -> tuple[GpuModel, ...]:
    """The catalog's models of `family`, flagship first; empty for an unknown family."""
    return tuple(g for g in GPU_MODELS.values() if g.family == family)
