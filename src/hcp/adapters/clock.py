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
ANCHOR_STALE_S = 60.0
"""An anchor not renewed for this long (wall seconds) has no leader behind it: a followed
clock then runs at the wall's pace from where the anchor left it (the leader renews it every
CLOCK_HEARTBEAT_S)."""
CLOCK_HEARTBEAT_S = 10.0
"""How often the leading process stores its clock's anchor again (wall seconds)."""


class FollowedClock:
    """Platform time as the process that leads the site keeps it (`hcp api` beside
    `hcp controller --speed 60`, or after a sped-up run): the leader stores its clock's anchor
    every CLOCK_HEARTBEAT_S; this clock reads it (`refresh`, or every REREAD_ANCHOR_S on a
    thread of its own once `start`ed, so `now` never waits on the store) and runs from it.

    Before any anchor is read it is the wall clock. An anchor no leader has renewed for
    ANCHOR_STALE_S runs on at the wall's pace, not its own speed. A new anchor is taken as
    it is, even behind (a new leader resumes at the stored history); under one anchor, time
    never moves back."""

    def __init__(self, anchors: Callable[[], ClockAnchor | None] | None = None) -> None:
        self._anchors = anchors
        self._anchor: ClockAnchor | None = None
        self._last = datetime.min.replace(tzinfo=UTC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, anchors: Callable[[], ClockAnchor | None]) -> None:
        """Read anchors from `anchors` from now on."""
        self._anchors = anchors

    def refresh(self) -> None:
        """Read the anchor now; a store that cannot answer leaves the last one standing."""
        if self._anchors is None:
            return
        try:
            anchor = self._anchors()
        except Exception as error:
            log.warning("cannot read the platform clock's anchor: %s", error)
            return
        if anchor is not None and anchor != self._anchor:
            self._anchor = anchor
            self._last = datetime.min.replace(tzinfo=UTC)

    def start(self, every_s: float = REREAD_ANCHOR_S) -> None:
        """Read the anchor now, then every `every_s` on a daemon thread until `stop`."""
        self.refresh()

        def reread() -> None:
            while not self._stop.wait(every_s):
                self.refresh()

        self._thread = threading.Thread(target=reread, name="platform-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def now(self) -> datetime:
        wall = datetime.now(UTC)
        anchor = self._anchor
        if anchor is None:
            return wall
        renewed_until = anchor.wall_at + timedelta(seconds=ANCHOR_STALE_S)
        if wall <= renewed_until:
            now = anchor.at(wall)
        else:  # no leader renews it: on at the wall's pace
            now = anchor.at(renewed_until) + (wall - renewed_until)
        if now < self._last:
            return self._last
        self._last = now
        return now
