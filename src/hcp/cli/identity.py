"""`hcp users|keys|customers ...`: identity management on the server, straight to the database.

These run as the platform's own administrator (whoever can run them can read the database
anyway); the HTTP API offers the same operations under per-role rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import typer
from rich.console import Console
from rich.table import Table

from hcp.cli.database import database_errors, require_existing, require_migrated
from hcp.cli.settings import load_settings
from hcp.domain.errors import HcpError, NotFound
from hcp.domain.identity import Customer, Principal, Role
from hcp.services.identity import UNSET, Unset
from hcp.services.platform import Platform

SYSTEM = Principal(key_id="cli", role=Role.ADMIN, customer_id=None)
console = Console()
users = typer.Typer(help="Dashboard users.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
customers = typer.Typer(help="Customers.", no_args_is_help=True)


@contextmanager
def platform() -> Iterator[Platform]:
    """The platform's services on the configured database; domain errors become messages."""
    from hcp import bootstrap

    settings = load_settings()
    url = settings.effective_database_url
    with database_errors(url):
        require_existing(url)
        runtime = bootstrap.build(settings)
        try:
            require_migrated(runtime.engine, url)
            yield runtime.platform
        except HcpError as exc:
            typer.secho(f"hcp: {exc}", err=True, fg="red")
            raise typer.Exit(1) from None
        finally:
            runtime.close()


@users.command("create")
def create_user(
    email: str = typer.Option(..., help="login email"),
    role: Role = typer.Option(..., help="admin, operator or customer"),
    name: str = typer.Option("", help="display name"),
    customer: str | None = typer.Option(None, help="customer id (customer users only)"),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, envvar="HCP_NEW_USER_PASSWORD"
    ),
) -> None:
    """Create a dashboard user."""
    with platform() as p:
        user = p.identity.create_user(
            SYSTEM, email=email, name=name, role=role, password=password, customer_id=customer
        )
    console.print(f"{user.id}  {user.email}  {user.role.value}")


def _user_id(p: Platform, email: str) -> str:
    wanted = email.strip().lower()
    found = [u.id for u in p.identity.users(SYSTEM) if u.email == wanted]
    if not found:
        raise NotFound("user", wanted)
    return found[0]


@users.command("disable")
def disable_user(email: str) -> None:
    """Stop a user logging in; its dashboard sessions end at once."""
    with platform() as p:
        user = p.identity.update_user(SYSTEM, _user_id(p, email), disabled=True)
    console.print(f"{user.id}  {user.email}  disabled")


@users.command("enable")
def enable_user(email: str) -> None:
    """Let a disabled user log in again."""
    with platform() as p:
        user = p.identity.update_user(SYSTEM, _user_id(p, email), disabled=False)
    console.print(f"{user.id}  {user.email}  enabled")


@users.command("password")
def set_password(
    email: str,
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, envvar="HCP_NEW_USER_PASSWORD"
    ),
) -> None:
    """Set a user's password; its dashboard sessions end at once."""
    with platform() as p:
        user = p.identity.update_user(SYSTEM, _user_id(p, email), password=password)
    console.print(f"{user.id}  {user.email}  password set; its sessions ended")


_WEIGHT_HELP = "fair-share weight: its share of contended GPUs against other customers'"
_QUOTA_HELP = "most GPUs it may hold at once"


@customers.command("create")
def create_customer(
    customer_id: str,
    name: str = typer.Option("", help="display name"),
    weight: float = typer.Option(1.0, help=_WEIGHT_HELP),
    gpu_quota: int | None = typer.Option(None, help=f"{_QUOTA_HELP} (default: no quota)"),
) -> None:
    """Create a customer."""
    with platform() as p:
        customer = p.identity.create_customer(SYSTEM, customer_id, name, weight, gpu_quota)
    console.print(_customer_line(customer))


@customers.command("set")
def set_customer(
    customer_id: str,
    name: str | None = typer.Option(None, help="display name"),
    weight: float | None = typer.Option(None, help=_WEIGHT_HELP),
    gpu_quota: int | None = typer.Option(None, help=_QUOTA_HELP),
    no_gpu_quota: bool = typer.Option(False, "--no-gpu-quota", help="lift its GPU quota"),
) -> None:
    """Rename a customer, or set its fair-share weight or GPU quota; the scheduler weighs the
    new figures from its next tick."""
    if gpu_quota is not None and no_gpu_quota:
        raise typer.BadParameter("give --gpu-quota or --no-gpu-quota, not both")
    if name is None and weight is None and gpu_quota is None and not no_gpu_quota:
        raise typer.BadParameter("nothing to change: give --name, --weight or a GPU quota")
    quota: int | Unset | None = (
        None if no_gpu_quota else (UNSET if gpu_quota is None else gpu_quota)
    )
    with platform() as p:
        customer = p.identity.update_customer(
            SYSTEM, customer_id, name=name, weight=weight, gpu_quota=quota
        )
    console.print(_customer_line(customer))


@customers.command("list")
def list_customers() -> None:
    """Every customer, with its fair-share weight and GPU quota."""
    with platform() as p:
        found = p.identity.customers(SYSTEM)
    table = Table()
    table.add_column("id", no_wrap=True, min_width=max((len(c.id) for c in found), default=2))
    for header in ("name", "weight", "GPU quota", "created"):
        table.add_column(header)
    for c in found:
        quota = "" if c.gpu_quota is None else str(c.gpu_quota)
        table.add_row(c.id, c.name, f"{c.weight:g}", quota, f"{c.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


def _customer_line(customer: Customer) -> str:
    quota = "no GPU quota" if customer.gpu_quota is None else f"GPU quota {customer.gpu_quota}"
    return f"{customer.id}  {customer.name}  weight {customer.weight:g}  {quota}"


def _days(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 < value <= 36_500):
        raise typer.BadParameter(f"must be a number of days above 0 and at most 36500, not {value}")
    return value


@keys.command("create")
def create_key(
    name: str = typer.Option(..., help="what the key is for"),
    role: Role = typer.Option(Role.CUSTOMER),
    customer: str | None = typer.Option(None, help="customer id (customer keys only)"),
    expires_days: float | None = typer.Option(
        None, help="expire after this many days (up to 36,500)", callback=_days
    ),
) -> None:
    """Create an API key and print its secret (shown once)."""
    with platform() as p:
        expires_at = None
        if expires_days is not None:
            expires_at = p.auth.now() + timedelta(days=expires_days)
        issued = p.identity.create_key(
            SYSTEM, name=name, role=role, customer_id=customer, expires_at=expires_at
        )
    console.print(f"{issued.key.id}  {issued.secret}")
    typer.secho("Store the secret now: it is not shown again.", err=True, fg="yellow")


@keys.command("list")
def list_keys() -> None:
    """Every key, without secrets."""
    with platform() as p:
        found = p.identity.keys(SYSTEM)
    table = Table()
    table.add_column("id", no_wrap=True, min_width=max((len(k.id) for k in found), default=2))
    for header in ("name", "prefix", "role", "customer", "created", "expires", "revoked"):
        table.add_column(header)
    for k in found:
        table.add_row(
            k.id,
            k.name,
            k.prefix,
            k.role.value,
            k.customer_id or "",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    console.print(table)


@keys.command("revoke")
def revoke_key(key_id: str) -> None:
    """Revoke a key (idempotent)."""
    with platform() as p:
        key = p.identity.revoke_key(SYSTEM, key_id)
    console.print(f"{key.id}  revoked {key.revoked_at:%Y-%m-%d %H:%M:%S}")
