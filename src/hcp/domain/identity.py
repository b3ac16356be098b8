"""Who is calling: roles, principals, customers and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    CUSTOMER = "customer"

    @property
    def sees_everything(self) -> bool:
        return self in (Role.ADMIN, Role.OPERATOR)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: which key, which role, and for a customer, which customer."""

    key_id: str
    role: Role
    customer_id: str | None

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
