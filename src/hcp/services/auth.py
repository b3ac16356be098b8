"""API keys: issue (the secret is shown once), and authenticate by the key's SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from hcp.domain.errors import Unauthenticated
from hcp.domain.identity import ApiKey, Principal, Role
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

KEY_PREFIX = "hcp_"


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
    """Turns a bearer secret into a Principal, or raises Unauthenticated."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        with self._uow() as uow:
            key = uow.api_keys.by_hash(hash_key(secret))
        if key is None or not key.is_active(self._clock.now()):
            raise Unauthenticated("invalid, expired or revoked API key")
        return Principal(key_id=key.id, role=key.role, customer_id=key.customer_id)
