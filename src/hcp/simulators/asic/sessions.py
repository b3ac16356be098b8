"""LuxOS sessions: the token that commands changing a miner's configuration must carry."""

from __future__ import annotations

import random
import string
from datetime import datetime

_ALPHABET = string.ascii_letters + string.digits


class SessionTable:
    """At most one session at a time; it expires after `timeout_s` idle seconds.

    Mirrors LuxOS: `logon` fails while another session is alive, every use refreshes the idle
    timer, `logoff` ends it early.
    """

    def __init__(self, timeout_s: float, rng: random.Random) -> None:
        self.timeout_s = timeout_s
        self._rng = rng
        self._id: str | None = None
        self._last_used_s = 0.0

    def active(self, now: datetime) -> str | None:
        """The live session's id, or None (an expired one is dropped here)."""
        return self._active_at(now.timestamp())

    def logon(self, now: datetime) -> str | None:
        """A new session id, or None while another session is alive."""
        now_s = now.timestamp()
        if self._active_at(now_s) is not None:
            return None
        choice = self._rng.choice
        self._id = "".join([choice(_ALPHABET) for _ in range(8)])
        self._last_used_s = now_s
        return self._id

    def use(self, session_id: str, now: datetime) -> bool:
        """True (and the idle timer restarts) when `session_id` is the live session."""
        now_s = now.timestamp()
        if not session_id or self._active_at(now_s) != session_id:
            return False
        self._last_used_s = now_s
        return True

    def logoff(self, session_id: str, now: datetime) -> bool:
        """End the live session if `session_id` is it; False otherwise."""
        if not self.use(session_id, now):
            return False
        self._id = None
        return True

    def _active_at(self, now_s: float) -> str | None:
        if self._id is not None and now_s - self._last_used_s > self.timeout_s:
            self._id = None
        return self._id
