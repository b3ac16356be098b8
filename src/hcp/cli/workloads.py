"""`hcp workloads ...`: submit, list, show and cancel through the HTTP API."""

from __future__ import annotations

import json
import os
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
AsOption = typer.Option("customer", "--as", help="which demo key to use: customer or admin")


class ApiClient:
    def __init__(self, url: str | None, key: str | None, role: str) -> None:
        settings = load_settings()
        self.base = (
            url or os.environ.get("HCP_URL") or f"http://{settings.host}:{settings.port}"
        ).rstrip("/")
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
        if response.is_error:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            _fail(f"{response.status_code}: {message}")
        return response.json()


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
    hours: float | None = typer.Option(None, help="estimated duration, hours"),
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
    url: str | None = UrlOption,
    key: str | None = KeyOption,
    as_: str = AsOption,
) -> None:
    """List workloads, newest first."""
    page = ApiClient(url, key, as_).call("GET", "/api/v1/workloads", status=status, limit=limit)
    table = Table("id", "customer", "type", "status", "GPUs", "submitted")
    for w in page["workloads"]:
        req = w["requirements"]
        gpus = f"{req['gpu_count']}× {req['gpu_type'] or 'any'}"
        table.add_row(
            w["workload_id"],
            w["customer_id"],
            w["workload_type"],
            w["status"],
            gpus,
            w["submitted_at"],
        )
    console.print(table)
    console.print(f"{len(page['workloads'])} of {page['total']}")


@app.command()
def show(
    workload_id: str, url: str | None = UrlOption, key: str | None = KeyOption, as_: str = AsOption
) -> None:
    """Show one workload with its state history."""
    console.print_json(
        data=ApiClient(url, key, as_).call("GET", f"/api/v1/workloads/{workload_id}")
    )


@app.command()
def cancel(
    workload_id: str, url: str | None = UrlOption, key: str | None = KeyOption, as_: str = AsOption
) -> None:
    """Cancel a workload (idempotent)."""
    result = ApiClient(url, key, as_).call("DELETE", f"/api/v1/workloads/{workload_id}")
    console.print(f"{result['workload_id']}  {result['status']}")
