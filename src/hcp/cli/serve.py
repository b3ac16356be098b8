"""`hcp up` (the whole platform in one process) and `hcp api` (the API alone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import typer
import uvicorn

from hcp import bootstrap
from hcp.cli.settings import load_settings
from hcp.config import Settings
from hcp.http.app import create_app

HostOption = typer.Option(None, help="bind address (HCP_HOST)")
PortOption = typer.Option(None, help="port (HCP_PORT)")


def up(host: str | None = HostOption, port: int | None = PortOption) -> None:
    """Migrate, provision the simulated site, and serve API + simulation on one port."""
    settings = load_settings(host=host, port=port)
    _configure_logging(settings)
    runtime = bootstrap.build(settings)
    keys = bootstrap.prepare(runtime)
    _announce(settings, keys)
    try:
        asyncio.run(_serve_with_market(runtime))
    finally:
        runtime.close()


def api(host: str | None = HostOption, port: int | None = PortOption) -> None:
    """Serve the API alone against an already migrated database (scale-out replica)."""
    settings = load_settings(host=host, port=port)
    _configure_logging(settings)
    runtime = bootstrap.build(settings)
    try:
        asyncio.run(_server(runtime.settings, runtime).serve())
    finally:
        runtime.close()


def _server(settings: Settings, runtime: bootstrap.Runtime) -> uvicorn.Server:
    app = create_app(runtime.platform, max_body_bytes=settings.max_body_bytes)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    return uvicorn.Server(config)


async def _serve_with_market(runtime: bootstrap.Runtime) -> None:
    feed = bootstrap.market_feed(runtime.settings, runtime.clock.now())
    first = feed.next_snapshot()
    if first is not None:
        runtime.platform.market.record(first, "simulator")
    market = asyncio.create_task(bootstrap.run_market_loop(runtime, feed))
    try:
        await _server(runtime.settings, runtime).serve()
    finally:
        market.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await market


def _announce(settings: Settings, keys: dict[str, str] | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(f"HCP {settings.env} on {url}  (API docs: {url}/docs)")
    if keys:
        path = settings.var_dir / bootstrap.DEMO_KEYS_FILE
        typer.echo(f"First start: demo API keys (also in {path}, mode 0600):")
        typer.echo(f"  admin:    {keys['admin']}")
        typer.echo(f"  customer: {keys['customer']}  (customer {keys['customer_id']})")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
