"""Customers, users, browser sessions and API keys, with who may manage what."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hcp.domain.errors import Duplicate, Forbidden, NotFound, Unauthenticated, ValidationError
from hcp.domain.identity import (
    ApiKey,
    BrowserSession,
    Customer,
    Principal,
    Role,
    User,
    check_role_scope,
)
from hcp.services.auth import Authenticator, IssuedKey, issue_key
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from hcp.services.ratelimit import RateLimiter

SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CUSTOMER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
MAX_WEIGHT = 1_000.0
"""The largest fair-share weight: a thousand times the default share is plenty."""


class Unset(Enum):
    """A field a change leaves as it is (where None has a meaning of its own)."""

    UNSET = "unset"


UNSET = Unset.UNSET
# Test runs hash with the cheapest Argon2 settings (HCP_ENV=test): production strength costs
# a third of a second per hash, thousands of times over in the suite.
FAST_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def session_id_of(secret: str) -> str:
    """The stored id of a session cookie secret (its SHA-256), so a database leak holds none."""
    return hashlib.sha256(secret.encode()).hexdigest()


def require_admin(principal: Principal, what: str) -> None:
    if not principal.manages_users:
        raise Forbidden(f"only an admin may {what}")


class IdentityService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        auth: Authenticator,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._auth = auth
        self._hasher = hasher or PasswordHasher()
        # Guessing a password costs an attempt: 5 failures at once per email, then one a minute.
        self._attempts = RateLimiter(per_second=1 / 60, burst=5)
        # Verified when the email is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = self._hasher.hash("no user has this password")

    # customers and users -------------------------------------------------------------------

    def create_customer(
        self,
        principal: Principal,
        customer_id: str,
        name: str,
        weight: float = 1.0,
        gpu_quota: int | None = None,
    ) -> Customer:
        """Store a customer with its fair-share `weight` (its share of contended GPUs against
        other customers') and `gpu_quota` (most GPUs it may hold at once; None: no quota)."""
        require_admin(principal, "create customers")
        if not _CUSTOMER_ID.match(customer_id):
            raise ValidationError(
                "customer_id", "2-64 of a-z, 0-9, '-' and '_', starting alphanumeric"
            )
        _check_weight(weight)
        _check_quota(gpu_quota)
        customer = Customer(
            customer_id, name.strip() or customer_id, self._clock.now(), weight, gpu_quota
        )
        exists = ValidationError("customer_id", f"customer {customer_id!r} exists")
        with self._uow() as uow:
            if uow.customers.get(customer_id) is not None:
                raise exists
            try:
                uow.customers.add(customer)
                uow.commit()
            except Duplicate:  # created by a request that raced this one
                raise exists from None
        return customer

    def update_customer(
        self,
        principal: Principal,
        customer_id: str,
        *,
        name: str | None = None,
        weight: float | None = None,
        gpu_quota: int | Unset | None = UNSET,
    ) -> Customer:
        """Rename a customer, or set its fair-share weight or GPU quota (admins only; `None`
        for `gpu_quota` lifts the quota, `UNSET` leaves it). The scheduler weighs the new
        figures from its next tick; submissions check a new quota within
        `services.workloads.CAPACITY_TTL`."""
        require_admin(principal, "change customers")
        # Only what changes is checked: a figure stored otherwise (before the API set them)
        # does not stop a rename, nor a change of the other one.
        if weight is not None:
            _check_weight(weight)
        if not isinstance(gpu_quota, Unset):
            _check_quota(gpu_quota)
        with self._uow() as uow:
            customer = uow.customers.get(customer_id)
            if customer is None:
                raise NotFound("customer", customer_id)
            changed = replace(
                customer,
                name=customer.name if name is None else (name.strip() or customer.id),
                weight=customer.weight if weight is None else weight,
                gpu_quota=customer.gpu_quota if isinstance(gpu_quota, Unset) else gpu_quota,
            )
            uow.customers.update(changed)
            uow.commit()
        return changed

    def customers(self, principal: Principal) -> list[Customer]:
        with self._uow() as uow:
            everyone = uow.customers.all()
        return [c for c in everyone if principal.may_see(c.id)]

    def create_user(
        self,
        principal: Principal,
        *,
        email: str,
        name: str,
        role: Role,
        password: str,
        customer_id: str | None = None,
    ) -> User:
        """Store a user with an Argon2 hash of `password`."""
        user = self.new_user(
            principal,
            email=email,
            name=name,
            role=role,
            password=password,
            customer_id=customer_id,
        )
        self.store_users([user])
        return user

    def store_users(self, users: Sequence[User]) -> None:
        """Store users made by `new_user`, all of them or none."""
        with self._uow() as uow:
            try:
                for user in users:
                    self._check_new_user(uow, user)
                    uow.users.add(user)
                uow.commit()
            except Duplicate:  # created by a request that raced this one
                emails = ", ".join(u.email for u in users)
                raise ValidationError("email", f"a user with email {emails} exists") from None

    def new_user(
        self,
        principal: Principal,
        *,
        email: str,
        name: str,
        role: Role,
        password: str,
        customer_id: str | None = None,
    ) -> User:
        """A user checked and with an Argon2 hash of `password`, not stored yet."""
        require_admin(principal, "create users")
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise ValidationError("email", "not an email address")
        _check_password(password)
        check_role_scope(role, customer_id)
        user = User(
            id=f"user-{uuid.uuid4().hex[:12]}",
            email=email,
            name=name.strip() or email,
            role=role,
            created_at=self._clock.now(),
            customer_id=customer_id,
            password_hash=self._hasher.hash(password),
        )
        return user

    def update_user(
        self,
        principal: Principal,
        user_id: str,
        *,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Disable or enable a user, or set its password (admins only). Either ends the user's
        browser sessions: a password changed because it leaked must not leave the thief
        logged in. An admin cannot disable itself (nobody might be left to undo it)."""
        require_admin(principal, "change users")
        if disabled is None and password is None:
            raise ValidationError("body", "give `disabled`, `password` or both")
        if password is not None:
            _check_password(password)
        if disabled and principal.user_id == user_id:
            raise ValidationError("disabled", "an admin cannot disable its own user")
        hashed = None if password is None else self._hasher.hash(password)
        with self._uow() as uow:
            user = uow.users.get(user_id)
            if user is None:
                raise NotFound("user", user_id)
            changed = replace(
                user,
                disabled=user.disabled if disabled is None else disabled,
                password_hash=user.password_hash if hashed is None else hashed,
            )
            uow.users.update(changed)
            if hashed is not None or changed.disabled:
                uow.sessions.delete_for_user(user_id)
            uow.commit()
        return changed

    def _check_new_user(self, uow: UnitOfWork, user: User) -> None:
        if uow.users.by_email(user.email) is not None:
            raise ValidationError("email", f"a user with email {user.email} exists")
        if user.customer_id is not None and uow.customers.get(user.customer_id) is None:
            raise ValidationError("customer_id", f"unknown customer {user.customer_id!r}")

    def users(self, principal: Principal) -> list[User]:
        require_admin(principal, "list users")
        with self._uow() as uow:
            return uow.users.all()

    # browser sessions ----------------------------------------------------------------------

    def login(self, email: str, password: str) -> tuple[str, BrowserSession]:
        """A new session for valid credentials: (cookie secret, session). The same message for
        an unknown email and a wrong password, so neither can be probed."""
        self._attempts.check(email.strip().lower(), self._clock.now())
        with self._uow() as uow:
            user = uow.users.by_email(email.strip().lower())
            known_hash = user.password_hash if user is not None else self._dummy_hash
            if not _verify(self._hasher, known_hash, password) or user is None or user.disabled:
                raise Unauthenticated("wrong email or password")
            secret = secrets.token_urlsafe(32)
            now = self._clock.now()
            session = BrowserSession(
                session_id_of(secret), user.id, secrets.token_urlsafe(24), now, now + SESSION_TTL
            )
            uow.sessions.add(session)
            uow.commit()
        self._attempts.refund(user.email)  # only failed attempts count against the email
        return secret, session

    def session(self, secret: str | None) -> tuple[Principal, BrowserSession, User]:
        """The principal behind a session cookie, or Unauthenticated."""
        if not secret:
            raise Unauthenticated("not logged in")
        with self._uow() as uow:
            session = uow.sessions.get(session_id_of(secret))
            user = None if session is None else uow.users.get(session.user_id)
        if session is None or user is None or user.disabled:
            raise Unauthenticated("not logged in")
        if not session.is_active(self._clock.now()):
            raise Unauthenticated("session expired; log in again")
        principal = Principal(f"session:{user.id}", user.role, user.customer_id, user.id)
        return principal, session, user

    def logout(self, secret: str | None) -> None:
        if not secret:
            return
        with self._uow() as uow:
            uow.sessions.delete(session_id_of(secret))
            uow.commit()

    # API keys ------------------------------------------------------------------------------

    def create_key(
        self,
        principal: Principal,
        *,
        name: str,
        role: Role,
        customer_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        """A new key; its secret is returned once and never stored. A key made with a key that
        expires expires no later (by default, at the same time)."""
        if principal.role is Role.CUSTOMER:
            customer_id = customer_id or principal.customer_id
            if role is not Role.CUSTOMER or customer_id != principal.customer_id:
                raise Forbidden("a customer may create keys for its own customer only")
        elif principal.role is Role.OPERATOR and role is not Role.OPERATOR:
            raise Forbidden("an operator may create operator keys only")
        check_role_scope(role, customer_id)
        now = self._clock.now()
        if expires_at is not None and expires_at <= now:
            raise ValidationError("expires_at", "must be in the future")
        if principal.expires_at is not None:
            # A key that expires may not outlive itself through the keys it makes.
            if expires_at is None:
                expires_at = principal.expires_at
            elif expires_at > principal.expires_at:
                raise ValidationError(
                    "expires_at",
                    f"must not be later than the expiry of the key making it "
                    f"({principal.expires_at.isoformat()})",
                )
        with self._uow() as uow:
            if customer_id is not None and uow.customers.get(customer_id) is None:
                raise ValidationError("customer_id", f"unknown customer {customer_id!r}")
            issued = issue_key(
                uow, name=name, role=role, customer_id=customer_id, now=now, expires_at=expires_at
            )
            uow.commit()
        return issued

    def keys(self, principal: Principal) -> list[ApiKey]:
        """Admins see every key; others the keys of their own scope."""
        with self._uow() as uow:
            everything = uow.api_keys.all()
        return [k for k in everything if _may_manage_key(principal, k)]

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKey:
        """Revoke a key (idempotent); it stops working at once in this process."""
        with self._uow() as uow:
            key = uow.api_keys.get(key_id)
            if key is None or not _may_manage_key(principal, key):
                raise NotFound("api key", key_id)
            uow.api_keys.revoke(key_id, self._clock.now())
            uow.commit()
            revoked = uow.api_keys.get(key_id)
        self._auth.forget()
        assert revoked is not None
        return revoked


def _check_password(password: str) -> None:
    """A password of at least MIN_PASSWORD_LENGTH characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"at least {MIN_PASSWORD_LENGTH} characters")


def _check_weight(weight: float) -> None:
    """A fair-share weight above 0 and at most MAX_WEIGHT."""
    if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
        raise ValidationError("weight", f"a number above 0 and at most {MAX_WEIGHT:g}")


def _check_quota(gpu_quota: int | None) -> None:
    """A GPU quota of at least 1, or none."""
    if gpu_quota is not None and gpu_quota < 1:
        raise ValidationError("gpu_quota", "at least 1 GPU (null: no quota)")


def _may_manage_key(principal: Principal, key: ApiKey) -> bool:
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.OPERATOR:
        return key.role is Role.OPERATOR
    return key.customer_id is not None and key.customer_id == principal.customer_id


def _verify(hasher: PasswordHasher, password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
