"""Clocks: the wall clock for production, a settable one for tests and simulations."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


MAX_SPEED = 100_000.0
"""The fastest a scaled clock runs: about a day of market time per wall second. Faster, a
platform's year passes in minutes and timestamps run past what datetimes can hold."""


class ScaledClock:
    """Wall time sped up `speed` times from `start` (demonstrations: `hcp up --speed 60`
    lives an hour of market and fleet time per minute). At speed 1 it is the wall clock, moved
    forward by `resume_at` when the store's history is ahead of it."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"speed must be above 0 and at most {MAX_SPEED:,}, not {speed}")
        self.speed = speed
        self._origin = start or datetime.now(UTC)
        self._wall_origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._wall_origin
        return self._origin + timedelta(seconds=elapsed * self.speed)

    def resume_at(self, moment: datetime) -> None:
        """Carry on from `moment` if it is ahead of now; never move back. A platform restarted
        after a sped-up run resumes at its stored history, not behind it."""
        ahead = moment - self.now()
        if ahead > timedelta(0):
            self._origin += ahead
