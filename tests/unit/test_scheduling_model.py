"""Scheduling data refuses what breaks a rule; the benchmark runs end to end on a tiny fleet."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass
from hcp.scheduling.bench import run
from hcp.scheduling.model import RunningWorkload, SchedulingPolicy, WorkloadSpec

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def spec() -> WorkloadSpec:
    return WorkloadSpec("w", "c", WorkloadClass.AI_TRAINING, None, 1, 0.0, 1.0, NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [("gpu_count", 0), ("memory_gb_per_gpu", -1.0), ("estimated_hours", 0.0), ("retries", -1)],
)
def test_a_workload_spec_names_the_field_it_refuses(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        replace(spec(), **{field: value})
    assert refused.value.field == field


def test_a_running_workload_holds_at_least_one_gpu() -> None:
    with pytest.raises(ValidationError):
        RunningWorkload(spec(), (), NOW)


@pytest.mark.parametrize(
    "policy",
    [
        {"min_runtime": timedelta(minutes=-1)},
        {"max_retries": -1},
        {"aging_share_per_hour": -0.1},
        {"customer_weights": {"c": 0.0}},
    ],
)
def test_a_policy_refuses_negative_knobs(policy: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        replace(SchedulingPolicy(), **policy)


def test_the_benchmark_reports_every_figure_on_a_tiny_fleet() -> None:
    report = run(gpu_count=64, queued=300, customers=10, ticks=2)

    for key in ("placement_p50_ms", "placement_p99_ms", "throughput_workloads_per_s"):
        value = report[key]
        assert isinstance(value, float) and value >= 0
    assert report["gpus"] == 64 and report["queued"] == 300
