"""`hcp workloads ...`: submit, list, show and cancel through the HTTP API."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from hcp.cli.settings import load_settings
from hcp.config import DEMO_KEYS_FILE
from hcp.domain.workloads import WorkloadClass

app = typer.Typer(help="Workloads, through the API.", no_args_is_help=True)
console = Console()

UrlOption = typer.Option(
    None, "--url", help="API base URL (HCP_URL; default from HCP_HOST/HCP_PORT)"
)
KeyOption = typer.Option(None, "--key", help="API key (HCP_API_KEY; default: var/demo-keys.json)")
ROLES = ("customer", "admin")


def _role(value: str) -> str:
    if value not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}, not {value!r}")
    return value


AsOption = typer.Option(
    "customer", "--as", help="which demo key to use: customer or admin", callback=_role
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _workload_id(value: str) -> str:
    """A workload id as the API gives them; anything else (a path, a query) is refused rather
    than sent, so `cancel ../keys/...` cannot reach another resource."""
    if not _ID.match(value):
        raise typer.BadParameter(f"{value!r} is not a workload id")
    return value


def _hours(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive number of hours, not {value}")
    return value


class ApiClient:
    def __init__(self, url: str | None, key: str | None, role: str) -> None:
        settings = load_settings()
        self.base = (url or os.environ.get("HCP_URL") or settings.api_url).rstrip("/")
        try:
            parsed = httpx.URL(self.base)
        except httpx.InvalidURL as exc:
            _fail(f"bad API URL {self.base}: {exc}")
        if parsed.scheme not in ("http", "https") or not parsed.host:
            _fail(f"bad API URL {self.base}: expected http://HOST:PORT or https://HOST")
        self.key = key or os.environ.get("HCP_API_KEY") or _demo_key(settings.var_dir, role)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = httpx.request(
                method, self.base + path, json=body, params=query, headers=headers, timeout=10
            )
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {self.base}: {exc}")
        if not response.is_success:
            try:
                message = response.json().get("message", response.text)
            except (ValueError, AttributeError):
                message = response.text[:200] or response.reason_phrase
            _fail(f"{response.status_code}: {message}")
        try:
            return response.json()
        except ValueError:
            _fail(f"{self.base} answered with something that is not JSON: {response.text[:80]!r}")


def _demo_key(var_dir: Path, role: str) -> str:
    path = var_dir / DEMO_KEYS_FILE
    try:
        return str(json.loads(path.read_text())[role])
    except (OSError, ValueError, KeyError):
        _fail(f"no API key: pass --key, set HCP_API_KEY, or run `hcp up` once to create {path}")


def _fail(message: str) -> NoReturn:
    typer.secho(f"hcp: {message}", err=True, fg="red")
    raise typer.Exit(1)


@app.command()
def submit(
    workload_type: WorkloadClass = typer.Argument(..., help="workload class"),
    gpu_type: str = typer.Option("H100", help="GPU family, or 'any'"),
    gpu_count: int = typer.Option(1, min=1),
    hours: float | None = typer.Option(None, help="estimated duration, hours", callback=_hours),
    customer: str | None = typer.Option(None, help="customer id (admin keys only)"),
    url: str | None = UrlOption,
    key: str | None = KeyOption,
    as_: str = AsOption,
) -> None:
    """Queue a workload; prints its id and queue position."""
    requirements: dict[str, Any] = {"gpu_type": gpu_type, "gpu_count": gpu_count}
    if hours is not None:
        requirements["estimated_duration_hours"] = hours
    body = {"workload_type": workload_type.value, "requirements": requirements}
    if customer:
        body["customer_id"] = customer
    created = ApiClient(url, key, as_).call("POST", "/api/v1/workloads", body)
    console.print(
        f"{created['workload_id']}  {created['status']}  queue position {created['queue_position']}"
    )


@app.command("list")
def list_(
    status: str | None = typer.Option(None, help="only this state"),
    limit: int = typer.Option(50, min=1, max=1000),
    offset: int = typer.Option(0, min=0, max=2**31 - 1, help="skip this many (the next page)"),
    url: str | None = UrlOption,
    key: str | None = KeyOption,
    as_: str = AsOption,
) -> None:
    """List workloads, newest first."""
    page = ApiClient(url, key, as_).call(
        "GET", "/api/v1/workloads", status=status, limit=limit, offset=offset
    )
    table = Table("customer", "type", "status", "GPUs", "submitted")
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to copy into show or cancel
    for w in page["workloads"]:
        req = w["requirements"]
        gpus = f"{req['gpu_count']}× {req['gpu_type'] or 'any'}"
        table.add_row(
            w["customer_id"],
            w["workload_type"],
            w["status"],
            gpus,
            w["submitted_at"],
            w["workload_id"],
        )
    console.print(table)
    shown = len(page["workloads"])
    first = f"{offset + 1}-{offset + shown}" if shown else "none"
    console.print(f"{first} of {page['total']}")


IdArgument = typer.Argument(..., help="workload id", callback=_workload_id)


@app.command()
def show(
    workload_id: str = IdArgument,
    url: str | None = UrlOption,
    key: str | None = KeyOption,
    as_: str = AsOption,
) -> None:
    """Show one workload with its state history."""
    console.print_json(
        data=ApiClient(url, key, as_).call("GET", f"/api/v1/workloads/{workload_id}")
    )


@app.command()
def cancel(
    workload_id: str = IdArgument,
    url: str | None = UrlOption,
    key: str | None = KeyOption,
    as_: str = AsOption,
) -> None:
    """Cancel a workload (idempotent)."""
    result = ApiClient(url, key, as_).call("DELETE", f"/api/v1/workloads/{workload_id}")
    console.print(f"{result['workload_id']}  {result['status']}")
