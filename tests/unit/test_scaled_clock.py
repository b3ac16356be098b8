"""The scaled clock of `hcp up`: speed, and resuming ahead of the wall (never behind)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from hcp.adapters.clock import (
    ANCHOR_STALE_S,
    MAX_SPEED,
    ClockAnchor,
    FollowedClock,
    ScaledClock,
)

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
    read: list[ClockAnchor | None] = [None]
    clock = FollowedClock(lambda: read[0])
    clock.refresh()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)  # none stored: the wall
    read[0] = ClockAnchor(wall, wall + timedelta(days=3), 60.0)
    assert clock.now() - wall < timedelta(days=1)  # not read yet
    clock.refresh()
    first = clock.now()
    assert first - wall >= timedelta(days=3)
    time.sleep(0.05)
    assert clock.now() - first >= timedelta(seconds=2)  # 50 ms of wall is 3 s at 60 times


def test_a_followed_clock_keeps_its_anchor_when_the_store_fails() -> None:
    wall = datetime.now(UTC)
    answers: list[ClockAnchor | Exception] = [ClockAnchor(wall, wall + timedelta(hours=5), 1.0)]

    def anchors() -> ClockAnchor | None:
        answer = answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = FollowedClock(anchors)
    clock.refresh()
    before = clock.now()
    assert before - wall >= timedelta(hours=5)
    answers[0] = OSError("database restarting")
    clock.refresh()
    assert clock.now() >= before  # the last anchor stands


def test_a_new_leaders_anchor_is_taken_even_behind() -> None:
    """A new leader resumes at the stored history, behind where the last one's clock ran."""
    wall = datetime.now(UTC)
    answers = [ClockAnchor(wall, wall + timedelta(days=20), 1.0)]
    clock = FollowedClock(lambda: answers[0])
    clock.refresh()
    assert clock.now() - wall >= timedelta(days=20)
    answers[0] = ClockAnchor(wall, wall + timedelta(days=2), 1.0)
    clock.refresh()
    assert timedelta(days=2) <= clock.now() - wall < timedelta(days=3)


def test_an_anchor_no_leader_renews_runs_on_at_the_walls_pace() -> None:
    """A `--speed 60` leader that stopped an hour ago: its anchor ran at 60 times for the
    minute it was fresh, then at the wall's pace, not 60 days ahead."""
    wall = datetime.now(UTC)
    old = ClockAnchor(wall - timedelta(hours=1), wall, 60.0)
    clock = FollowedClock(lambda: old)
    clock.refresh()
    fresh_for = timedelta(seconds=ANCHOR_STALE_S)
    expected = wall + fresh_for * 60 + (timedelta(hours=1) - fresh_for)
    assert abs(clock.now() - expected) < timedelta(seconds=5)


def test_a_started_followed_clock_rereads_on_its_own_thread() -> None:
    calls: list[int] = []

    def anchors() -> ClockAnchor | None:
        calls.append(1)
        return None

    clock = FollowedClock(anchors)
    clock.start(every_s=0.01)
    try:
        for _ in range(1000):
            clock.now()  # never reads the store itself
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 3
    finally:
        clock.stop()
