"""Samples from readings, epoch-millisecond time, resolutions and retention cutoffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.domain.gpu_telemetry import GpuReading
from hcp.domain.telemetry import (
    AsicReading,
    MinerState,
    Resolution,
    RetentionPolicy,
    Sample,
    asic_samples,
    effective_step_ms,
    floor_ms,
    from_epoch_ms,
    gpu_samples,
    resolution_for,
    to_epoch_ms,
)

AT = datetime(2025, 3, 14, 12, 0, 30, tzinfo=UTC)


def asic(**changes: object) -> AsicReading:
    values: dict[str, object] = {
        "device": "10.0.0.7:4028",
        "at": AT,
        "state": MinerState.MINING,
        "hashrate_ths": 199.5,
        "power_w": 3510.0,
        "temperature_c": 71.0,
        "profile": "stock",
        "accepted_shares": 120,
        "rejected_shares": 2,
    }
    values.update(changes)
    return AsicReading(**values)  # type: ignore[arg-type]


def test_an_asic_reading_becomes_one_sample_per_metric() -> None:
    samples = asic_samples(asic(), "site-asic-00007")
    assert {s.metric: s.value for s in samples} == {
        "hashrate_ths": 199.5,
        "power_w": 3510.0,
        "temperature_c": 71.0,
        "accepted_shares": 120.0,
        "rejected_shares": 2.0,
        "healthy": 1.0,
        "mining": 1.0,
    }
    assert {(s.device_id, s.at) for s in samples} == {("site-asic-00007", AT)}


def test_a_sleeping_faulty_miner_without_temperature() -> None:
    reading = asic(state=MinerState.SLEEPING, temperature_c=None, problems=("board 2 dead",))
    values = {s.metric: s.value for s in asic_samples(reading)}
    assert "temperature_c" not in values
    assert values["healthy"] == 0.0
    assert values["mining"] == 0.0
    assert asic_samples(reading)[0].device_id == "10.0.0.7:4028"


def test_a_gpu_reading_is_named_by_its_node_address() -> None:
    reading = GpuReading("node-001", 3, "GPU-abc", "H100", AT, 87.0, 640.5, 66.0, 70_000, 11_000, 0)
    samples = gpu_samples(reading)
    assert samples[0] == Sample("node-001/gpu3", "util_pct", AT, 87.0)
    assert [s.metric for s in samples] == [
        "util_pct",
        "power_w",
        "temp_c",
        "fb_used_mib",
        "fb_free_mib",
        "xid_last",
    ]
    assert gpu_samples(reading, "site-gpu-00004")[0].device_id == "site-gpu-00004"


def test_epoch_milliseconds_are_exact_and_round_down() -> None:
    at = datetime(2025, 1, 1, 0, 0, 0, 123_999, tzinfo=UTC)
    assert to_epoch_ms(at) == 1_735_689_600_123
    assert from_epoch_ms(1_735_689_600_123) == at.replace(microsecond=123_000)
    plus_two = timezone(timedelta(hours=2))
    assert to_epoch_ms(datetime(2025, 1, 1, 2, tzinfo=plus_two)) == 1_735_689_600_000
    with pytest.raises(ValueError, match="timezone"):
        to_epoch_ms(datetime(2025, 1, 1))


@given(st.integers(0, 4_000_000_000_000))
def test_epoch_milliseconds_round_trip(ms: int) -> None:
    assert to_epoch_ms(from_epoch_ms(ms)) == ms


@pytest.mark.parametrize(
    ("step", "resolution", "step_ms"),
    [
        (timedelta(seconds=1), Resolution.RAW, 1_000),
        (timedelta(seconds=59), Resolution.RAW, 59_000),
        (timedelta(minutes=1), Resolution.MINUTE, 60_000),
        (timedelta(seconds=90), Resolution.MINUTE, 120_000),
        (timedelta(minutes=59, seconds=1), Resolution.MINUTE, 3_600_000),
        (timedelta(hours=1), Resolution.HOUR, 3_600_000),
        (timedelta(minutes=90), Resolution.HOUR, 7_200_000),
        (timedelta(days=1), Resolution.HOUR, 86_400_000),
    ],
)
def test_the_step_picks_the_resolution_and_whole_buckets(
    step: timedelta, resolution: Resolution, step_ms: int
) -> None:
    assert resolution_for(step) is resolution
    assert effective_step_ms(step) == step_ms
    assert effective_step_ms(step) % resolution.width_ms == 0


def test_buckets_are_aligned_to_the_epoch() -> None:
    assert floor_ms(1_735_689_659_999, 60_000) == 1_735_689_600_000
    assert floor_ms(1_735_689_600_000, 3_600_000) == 1_735_689_600_000


def test_retention_cutoffs_fall_on_whole_hours() -> None:
    now = datetime(2025, 1, 8, 12, 34, 56, tzinfo=UTC)
    cutoffs = RetentionPolicy().cutoffs_ms(now)
    assert {r: from_epoch_ms(ms) for r, ms in cutoffs.items()} == {
        Resolution.RAW: datetime(2025, 1, 7, 12, tzinfo=UTC),
        Resolution.MINUTE: datetime(2025, 1, 1, 12, tzinfo=UTC),
        Resolution.HOUR: datetime(2024, 1, 9, 12, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    "ages",
    [
        {"raw": timedelta(0)},
        {"raw": timedelta(days=8)},
        {"minute": timedelta(days=400)},
    ],
)
def test_a_policy_must_keep_finer_data_no_longer_than_coarser(ages: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError, match="raw <= minute <= hour"):
        RetentionPolicy(**ages)
