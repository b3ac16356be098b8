"""The device catalog: spec-sheet figures, and invariants every model must keep."""

from __future__ import annotations

import pytest

from hcp.domain.catalog import (
    ASIC_MODELS,
    GPU_MODELS,
    asic_model,
    gpu_families,
    gpu_model,
    gpu_models_of_family,
)
from hcp.domain.devices import AsicModel

UNDERCLOCKED = ("eco-low", "eco")


@pytest.mark.parametrize(
    ("name", "hashrate_ths", "power_w"),
    [("S21", 200.0, 3_500.0), ("S21 Hydro", 335.0, 5_360.0), ("S19 XP", 140.0, 3_010.0)],
)
def test_asic_stock_profile_matches_the_spec_sheet(
    name: str, hashrate_ths: float, power_w: float
) -> None:
    stock = asic_model(name).stock
    assert (stock.hashrate_ths, stock.power_w) == (hashrate_ths, power_w)


def test_s21_stock_is_17_5_j_per_th() -> None:
    # 3500 W / 200 TH/s = 17.5 J/TH
    assert asic_model("S21").stock.efficiency_j_per_th == pytest.approx(17.5)


@pytest.mark.parametrize("model", ASIC_MODELS.values(), ids=lambda m: m.name)
def test_underclocked_profiles_beat_stock_and_turbo_loses(model: AsicModel) -> None:
    stock_j_per_th = model.stock.efficiency_j_per_th
    for name in UNDERCLOCKED:
        assert model.profile(name).efficiency_j_per_th < stock_j_per_th
    assert model.profile("turbo").efficiency_j_per_th > stock_j_per_th


@pytest.mark.parametrize("model", ASIC_MODELS.values(), ids=lambda m: m.name)
def test_more_hashrate_costs_more_power_per_th(model: AsicModel) -> None:
    # Physically: a higher clock needs a higher voltage, so J/TH rises with hashrate.
    by_hashrate = sorted(model.profiles, key=lambda p: p.hashrate_ths)
    powers_w = [p.power_w for p in by_hashrate]
    j_per_th = [p.efficiency_j_per_th for p in by_hashrate]
    assert powers_w == sorted(powers_w)
    assert j_per_th == sorted(j_per_th)
    assert len(set(j_per_th)) == len(j_per_th)


@pytest.mark.parametrize("model", ASIC_MODELS.values(), ids=lambda m: m.name)
def test_asic_figures_are_positive_and_sleep_is_cheap(model: AsicModel) -> None:
    assert all(p.power_w > 0 and p.hashrate_ths > 0 for p in model.profiles)
    assert 0 < model.sleep_power_w < min(p.power_w for p in model.profiles) / 50
    # "A few minutes" from sleep to full hashrate.
    assert 60 <= model.wake_seconds <= 600


def test_every_asic_has_the_shared_profile_names() -> None:
    for model in ASIC_MODELS.values():
        assert {p.name for p in model.profiles} == {"eco-low", "eco", "stock", "turbo"}
        assert model.stock_profile == "stock"


def test_catalogs_are_keyed_by_model_name_and_read_only() -> None:
    assert all(key == m.name for key, m in ASIC_MODELS.items())
    assert all(key == g.name for key, g in GPU_MODELS.items())
    with pytest.raises(TypeError):
        ASIC_MODELS["S9"] = asic_model("S21")  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "family", "busy_power_w", "memory_gb"),
    [
        ("H100 SXM", "H100", 700.0, 80),
        ("H100 PCIe", "H100", 350.0, 80),
        ("A100 SXM", "A100", 400.0, 80),
        ("L40S", "L40S", 350.0, 48),
    ],
)
def test_gpu_matches_the_datasheet(
    name: str, family: str, busy_power_w: float, memory_gb: int
) -> None:
    gpu = gpu_model(name)
    assert (gpu.family, gpu.busy_power_w, gpu.memory_gb) == (family, busy_power_w, memory_gb)
    assert 0 < gpu.idle_power_w < gpu.busy_power_w


def test_gpu_families_and_flagship_first() -> None:
    assert gpu_families() == frozenset({"H100", "A100", "L40S"})
    assert [g.name for g in gpu_models_of_family("H100")] == ["H100 SXM", "H100 PCIe"]
    assert gpu_models_of_family("B200") == ()


def test_unknown_models_name_the_known_ones() -> None:
    with pytest.raises(KeyError, match="S21 Hydro"):
        asic_model("S9")
    with pytest.raises(KeyError, match="L40S"):
        gpu_model("B200")
