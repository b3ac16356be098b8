"""Who is calling: roles, principals, customers and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hcp.domain.errors import ValidationError


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    CUSTOMER = "customer"

    @property
    def sees_everything(self) -> bool:
        return self in (Role.ADMIN, Role.OPERATOR)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: which key (or browser session), which role, and for a
    customer, which customer."""

    key_id: str
    role: Role
    customer_id: str | None
    user_id: str | None = None
    expires_at: datetime | None = None
    """When the key it called with stops working (None: a key that does not expire, a session
    or a system caller)."""

    @property
    def manages_users(self) -> bool:
        """Users, API keys of others, customers and price sheets are the admin's alone."""
        return self.role is Role.ADMIN

    def may_act_for(self, customer_id: str) -> bool:
        """Admins act for anyone; a customer key only for its own customer."""
        return self.role is Role.ADMIN or self.customer_id == customer_id

    def may_see(self, customer_id: str) -> bool:
        return self.role.sees_everything or self.customer_id == customer_id


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    created_at: datetime
    weight: float = 1.0
    gpu_quota: int | None = None


@dataclass(frozen=True, slots=True)
class User:
    """A person who logs in to the dashboard. Only an Argon2 hash of the password is kept."""

    id: str
    email: str
    name: str
    role: Role
    created_at: datetime
    customer_id: str | None = None
    password_hash: str | None = None
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A logged-in browser: the cookie carries a secret whose SHA-256 is `id`; forms must
    echo `csrf_token`."""

    id: str
    user_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    def is_active(self, now: datetime) -> bool:
        return now < self.expires_at


def check_role_scope(role: Role, customer_id: str | None) -> None:
    """A customer identity belongs to exactly one customer; staff belong to none."""
    if role is Role.CUSTOMER and customer_id is None:
        raise ValidationError("customer_id", "a customer key or user needs a customer_id")
    if role is not Role.CUSTOMER and customer_id is not None:
        raise ValidationError("customer_id", f"an {role.value} belongs to no customer")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: only the SHA-256 of the secret is kept, and a short prefix for display."""

    id: str
    key_hash: str
    prefix: str
    name: str
    role: Role
    customer_id: str | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at
