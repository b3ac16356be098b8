"""Clocks: the wall clock for production, a settable one for tests and simulations, a sped-up
one for demonstrations, and one that follows another process's platform time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)


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

    def anchor(self) -> ClockAnchor:
        """Where this clock stands against the wall now, for other processes to follow."""
        return ClockAnchor(datetime.now(UTC), self.now(), self.speed)


@dataclass(frozen=True, slots=True)
class ClockAnchor:
    """Platform time `platform_at` at wall time `wall_at`, running `speed` times the wall."""

    wall_at: datetime
    platform_at: datetime
    speed: float

    def at(self, wall: datetime) -> datetime:
        return self.platform_at + (wall - self.wall_at) * self.speed


def anchor_of(clock: object) -> ClockAnchor | None:
    """A platform clock's anchor: a scaled clock's own, the wall clock's (speed 1, no offset);
    None for a clock of another kind (a test's)."""
    if isinstance(clock, ScaledClock):
        return clock.anchor()
    if isinstance(clock, SystemClock):
        wall = datetime.now(UTC)
        return ClockAnchor(wall, wall, 1.0)
    return None


REREAD_ANCHOR_S = 5.0
"""How often a followed clock reads its anchor again (wall seconds)."""


class FollowedClock:
    """Platform time as the process that leads the site keeps it (`hcp api` beside
    `hcp controller --speed 60`, or after a sped-up run): the leader stores its clock's anchor,
    this clock reads it every REREAD_ANCHOR_S and runs from it. Before any anchor is stored
    (or while none can be read) it is the wall clock; it never moves back."""

    def __init__(
        self,
        anchors: Callable[[], ClockAnchor | None] | None = None,
        reread_s: float = REREAD_ANCHOR_S,
    ) -> None:
        self._anchors = anchors
        self._reread_s = reread_s
        self._anchor: ClockAnchor | None = None
        self._read_at = -float("inf")  # monotonic time of the last read
        self._reading = threading.Lock()
        self._last = datetime.min.replace(tzinfo=UTC)

    def follow(self, anchors: Callable[[], ClockAnchor | None]) -> None:
        """Read anchors from `anchors` from now on."""
        self._anchors, self._read_at = anchors, -float("inf")

    def now(self) -> datetime:
        if time.monotonic() - self._read_at >= self._reread_s:
            self._reread()
        wall = datetime.now(UTC)
        anchor = self._anchor
        now = wall if anchor is None else anchor.at(wall)
        if now < self._last:
            return self._last
        self._last = now
        return now

    def _reread(self) -> None:
        if self._anchors is None or not self._reading.acquire(blocking=False):
            return  # another thread is reading it: this one goes on with the last
        try:
            self._anchor = self._anchors() or self._anchor
        except Exception as error:  # a store that cannot answer: keep the last anchor
            log.warning("cannot read the platform clock's anchor: %s", error)
        finally:
            self._read_at = time.monotonic()
            self._reading.release()
