"""The scaled clock of `hcp up`: speed, and resuming ahead of the wall (never behind)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from hcp.adapters.clock import MAX_SPEED, ScaledClock

START = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_it_runs_speed_times_faster_than_the_wall() -> None:
    clock = ScaledClock(3_600.0, START)
    time.sleep(0.05)
    elapsed = clock.now() - START
    assert timedelta(seconds=0.05 * 3_600) <= elapsed < timedelta(seconds=3_600)


def test_resume_at_moves_forward_only_and_keeps_the_speed() -> None:
    clock = ScaledClock(1.0, START)
    clock.resume_at(START - timedelta(days=1))
    assert clock.now() - START < timedelta(seconds=1)
    clock.resume_at(START + timedelta(days=3))
    resumed = clock.now()
    assert START + timedelta(days=3) <= resumed < START + timedelta(days=3, seconds=1)
    time.sleep(0.02)
    assert timedelta(seconds=0.02) <= clock.now() - resumed < timedelta(seconds=1)


@pytest.mark.parametrize("speed", [0.0, -1.0, math.inf, math.nan, MAX_SPEED * 2])
def test_a_speed_that_is_not_positive_or_beyond_the_maximum_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be above 0 and at most 100,000"):
        ScaledClock(speed)
