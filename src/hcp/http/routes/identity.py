"""/api/v1/keys, /api/v1/users and /api/v1/customers."""

from __future__ import annotations

from fastapi import APIRouter, status

from hcp.domain.identity import ApiKey, Customer, User
from hcp.http.deps import CurrentPrincipal, PlatformDep
from hcp.http.schemas import (
    CustomerIn,
    CustomerOut,
    CustomerPatch,
    KeyCreated,
    KeyIn,
    KeyOut,
    UserIn,
    UserOut,
    UserPatch,
)
from hcp.services.identity import UNSET, Unset

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/keys", response_model=list[KeyOut])
def list_keys(platform: PlatformDep, caller: CurrentPrincipal) -> list[KeyOut]:
    """The keys the caller may manage (secrets are never shown again)."""
    return [key_out(k) for k in platform.identity.keys(caller)]


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyIn, platform: PlatformDep, caller: CurrentPrincipal) -> KeyCreated:
    """Create a key; the response holds its secret, shown this once."""
    issued = platform.identity.create_key(
        caller,
        name=body.name,
        role=body.role,
        customer_id=body.customer_id,
        expires_at=body.expires_at,
    )
    return KeyCreated(**key_out(issued.key).model_dump(), secret=issued.secret)


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, platform: PlatformDep, caller: CurrentPrincipal) -> KeyOut:
    """Revoke a key (idempotent). 404 for a key the caller may not manage."""
    return key_out(platform.identity.revoke_key(caller, key_id))


@router.get("/users", response_model=list[UserOut])
def list_users(platform: PlatformDep, caller: CurrentPrincipal) -> list[UserOut]:
    """Every user (admins only)."""
    return [user_out(u) for u in platform.identity.users(caller)]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(body: UserIn, platform: PlatformDep, caller: CurrentPrincipal) -> UserOut:
    """Create a dashboard user (admins only); the password is stored as an Argon2 hash."""
    user = platform.identity.create_user(
        caller,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
        customer_id=body.customer_id,
    )
    return user_out(user)


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(
    user_id: str, body: UserPatch, platform: PlatformDep, caller: CurrentPrincipal
) -> UserOut:
    """Disable or enable a user, or set its password (admins only); either ends the user's
    dashboard sessions."""
    user = platform.identity.update_user(
        caller, user_id, disabled=body.disabled, password=body.password
    )
    return user_out(user)


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(platform: PlatformDep, caller: CurrentPrincipal) -> list[CustomerOut]:
    """Customers the caller may see (a customer sees itself)."""
    return [customer_out(c) for c in platform.identity.customers(caller)]


@router.post("/customers", status_code=status.HTTP_201_CREATED, response_model=CustomerOut)
def create_customer(
    body: CustomerIn, platform: PlatformDep, caller: CurrentPrincipal
) -> CustomerOut:
    """Create a customer (admins only), with its fair-share weight and GPU quota."""
    customer = platform.identity.create_customer(
        caller, body.customer_id, body.name, body.weight, body.gpu_quota
    )
    return customer_out(customer)


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
def update_customer(
    customer_id: str, body: CustomerPatch, platform: PlatformDep, caller: CurrentPrincipal
) -> CustomerOut:
    """Rename a customer, or set its fair-share weight or GPU quota (admins only); a field
    left out stays, `"gpu_quota": null` lifts the quota. The scheduler weighs the new figures
    from its next tick; submissions are checked against a new quota within 10 s."""
    quota: int | Unset | None = body.gpu_quota if "gpu_quota" in body.model_fields_set else UNSET
    customer = platform.identity.update_customer(
        caller, customer_id, name=body.name, weight=body.weight, gpu_quota=quota
    )
    return customer_out(customer)


def key_out(k: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=k.id,
        name=k.name,
        prefix=k.prefix,
        role=k.role,
        customer_id=k.customer_id,
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
    )


def user_out(u: User) -> UserOut:
    return UserOut(
        user_id=u.id,
        email=u.email,
        name=u.name,
        role=u.role,
        customer_id=u.customer_id,
        created_at=u.created_at,
        disabled=u.disabled,
    )


def customer_out(c: Customer) -> CustomerOut:
    return CustomerOut(
        customer_id=c.id,
        name=c.name,
        created_at=c.created_at,
        weight=c.weight,
        gpu_quota=c.gpu_quota,
    )
