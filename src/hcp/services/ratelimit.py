"""Per-key rate limits: a token bucket per caller, refilled continuously."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hcp.domain.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: datetime


class RateLimiter:
    """Allow `per_second` requests per key on average and bursts of up to `burst`.

    `per_second <= 0` turns limiting off. State is per process: with N API replicas a key
    gets up to N times the rate, which is the usual trade for needing no shared store.
    """

    def __init__(self, per_second: float, burst: int, max_keys: int = 100_000) -> None:
        self.per_second = per_second
        self.burst = max(1, burst)
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def check(self, key: str, now: datetime) -> None:
        """Take one token for `key`, or raise RateLimited saying when one will be there."""
        if self.per_second <= 0:
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now)  # a flood of distinct keys must not grow memory forever
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, (now - bucket.updated).total_seconds())
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise RateLimited((1.0 - bucket.tokens) / self.per_second)
        bucket.tokens -= 1.0

    def _prune(self, now: datetime) -> None:
        """Forget the buckets that have refilled (a new one would be the same); if that frees
        too little, the least recently used half. Clearing them all, as before, let a flood
        of distinct keys (emails tried at the login) refill the one under attack."""
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + max(0.0, (now - b.updated).total_seconds()) * self.per_second
            >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys // 2:
            by_use = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in by_use[: len(by_use) - self._max_keys // 2]:
                del self._buckets[key]

    def refund(self, key: str) -> None:
        """Give back the token of a call that should not count (a successful login)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + 1.0)
