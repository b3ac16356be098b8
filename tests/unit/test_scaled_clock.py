"""The scaled clock of `hcp up`: speed, and resuming ahead of the wall (never behind)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from hcp.adapters.clock import MAX_SPEED, ClockAnchor, FollowedClock, ScaledClock

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


def test_a_followed_clock_runs_from_the_leaders_anchor() -> None:
    wall = datetime.now(UTC)
    ahead = ClockAnchor(wall, wall + timedelta(days=3), 60.0)
    read: list[ClockAnchor | None] = [None, ahead]
    clock = FollowedClock(lambda: read[0], reread_s=0.0)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)  # none stored: the wall
    read[0] = ahead
    first = clock.now()
    assert first - wall >= timedelta(days=3)
    time.sleep(0.05)
    assert clock.now() - first >= timedelta(seconds=2)  # 50 ms of wall is 3 s at 60 times


def test_a_followed_clock_keeps_its_anchor_when_the_store_fails_and_never_goes_back() -> None:
    wall = datetime.now(UTC)
    answers: list[object] = [ClockAnchor(wall, wall + timedelta(hours=5), 1.0)]

    def anchors() -> ClockAnchor | None:
        answer = answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    clock = FollowedClock(anchors, reread_s=0.0)
    before = clock.now()
    assert before - wall >= timedelta(hours=5)
    answers[0] = OSError("database restarting")
    assert clock.now() >= before  # the last anchor stands
    answers[0] = ClockAnchor(wall, wall + timedelta(hours=1), 1.0)  # a leader behind it
    assert clock.now() >= before


def test_a_followed_clock_reads_the_store_only_every_so_often() -> None:
    calls: list[int] = []

    def anchors() -> ClockAnchor | None:
        calls.append(1)
        return None

    clock = FollowedClock(anchors)
    for _ in range(100):
        clock.now()
    assert len(calls) == 1
