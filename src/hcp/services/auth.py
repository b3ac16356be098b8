"""API keys: issue (the secret is shown once), and authenticate by the key's SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from hcp.domain.errors import Unauthenticated
from hcp.domain.identity import ApiKey, Principal, Role
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

KEY_PREFIX = "hcp_"
KEY_CACHE_TTL = timedelta(seconds=5)


def hash_key(secret: str) -> str:
    """SHA-256 hex of a key. Keys are 256-bit random, so a fast hash is safe: no guessing
    attack beats the key space, and lookup stays one indexed query."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str


def issue_key(
    uow: UnitOfWork,
    *,
    name: str,
    role: Role,
    customer_id: str | None,
    now: datetime,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Create and store a key (not committed); the returned secret is never stored."""
    if role is Role.CUSTOMER and customer_id is None:
        raise ValueError("a customer key needs a customer_id")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=f"key-{uuid.uuid4().hex[:12]}",
        key_hash=hash_key(secret),
        prefix=secret[:10],
        name=name,
        role=role,
        customer_id=customer_id,
        created_at=now,
        expires_at=expires_at,
    )
    uow.api_keys.add(key)
    return IssuedKey(key, secret)


class Authenticator:
    """Turns a bearer secret into a Principal, or raises Unauthenticated.

    Lookups are remembered for KEY_CACHE_TTL, so a revoked key stops working within that
    time, and the hot path costs no database read.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, max_cached: int = 10_000) -> None:
        self._uow = uow
        self._clock = clock
        self._max_cached = max_cached
        self._cache: OrderedDict[str, tuple[datetime, ApiKey | None]] = OrderedDict()

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        now = self._clock.now()
        key = self._lookup(hash_key(secret), now)
        if key is None or not key.is_active(now):
            raise Unauthenticated("invalid, expired or revoked API key")
        return Principal(
            key_id=key.id, role=key.role, customer_id=key.customer_id, expires_at=key.expires_at
        )

    def _lookup(self, key_hash: str, now: datetime) -> ApiKey | None:
        cached = self._cache.get(key_hash)
        if cached is not None and now - cached[0] < KEY_CACHE_TTL:
            return cached[1]
        with self._uow() as uow:
            key = uow.api_keys.by_hash(key_hash)
        self._cache[key_hash] = (now, key)
        self._cache.move_to_end(key_hash)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
        return key

    def now(self) -> datetime:
        return self._clock.now()

    def forget(self) -> None:
        """Drop every remembered lookup (after revoking a key, say)."""
        self._cache.clear()
