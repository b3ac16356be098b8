"""`hcp up` (the whole platform in one process) and `hcp api` (the API alone)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Iterator

import typer
import uvicorn

from hcp import bootstrap
from hcp.adapters.clock import ScaledClock, SystemClock
from hcp.adapters.devices.site_file import DeviceFile, load_device_file
from hcp.aio import run_on_uvloop
from hcp.cli.settings import load_settings
from hcp.config import DEMO_KEYS_FILE, Settings
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import DataError
from hcp.http.app import create_app
from hcp.services.ports import Clock


def serve_platform(
    host: str | None,
    port: int | None,
    speed: float = 1.0,
    asics: int | None = None,
    gpus: int | None = None,
) -> None:
    """`hcp up`: migrate, provision the simulated site, serve API + simulation."""
    settings = load_settings(host=host, port=port, site_asics=asics, site_gpus=gpus)
    _configure_logging(settings)
    device_file = None
    if settings.devices_file is not None:
        try:  # before anything starts: a mistake there stops hcp up with its file and line
            device_file = load_device_file(settings.devices_file)
        except DataError as error:
            typer.secho(f"hcp: {error}", err=True, fg="red")
            raise typer.Exit(1) from None
    # The port is claimed before anything else: the simulated site opens hundreds of sockets
    # on ports the kernel picks, and one of them must not take the port the user asked for.
    with _listening(settings) as listeners:
        # A simulated site's clock resumes at stored history ahead of it; devices elsewhere
        # keep wall time, and so does the platform with them.
        elsewhere = device_file is not None and speed == 1.0
        clock: Clock = SystemClock() if elsewhere else ScaledClock(speed)
        runtime = bootstrap.build(settings, clock)
        try:
            try:
                asked = {DeviceKind.ASIC: asics, DeviceKind.GPU: gpus}
                fleet_asked = [kind for kind, count in asked.items() if count is not None]
                keys = bootstrap.prepare(runtime, fleet_asked=fleet_asked)
            except bootstrap.FleetMismatch as error:
                typer.secho(f"hcp: {error}", err=True, fg="red")
                raise typer.Exit(1) from None
            _announce(settings, keys)
            # Everything built so far lives as long as the process: out of every GC pass.
            gc.freeze()
            try:
                run_on_uvloop(_serve_live(runtime, speed, listeners, device_file))
            except DataError as error:  # the devices file does not fit the stored site
                typer.secho(f"hcp: {error}", err=True, fg="red")
                raise typer.Exit(1) from None
        finally:
            runtime.close()


def serve_api(host: str | None, port: int | None) -> None:
    """`hcp api`: the API alone against an already migrated database."""
    settings = load_settings(host=host, port=port)
    _configure_logging(settings)
    with _listening(settings) as listeners:
        runtime = bootstrap.build(settings)
        try:
            run_on_uvloop(_server(runtime.settings, runtime).serve(sockets=listeners))
        finally:
            runtime.close()


@contextlib.contextmanager
def _listening(settings: Settings) -> Iterator[list[socket.socket]]:
    """The API's listening sockets (see `_listen`), closed on the way out."""
    listeners = _listen(settings)
    try:
        yield listeners
    finally:
        for listener in listeners:
            listener.close()


def _listen(settings: Settings) -> list[socket.socket]:
    """Listen on every address the host resolves to (all interfaces for an empty host), as
    asyncio's `create_server` would; or stop with a message naming the address and why.

    Connections made while the platform starts wait in the queue rather than being refused."""
    listeners: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(
            settings.host or None,
            settings.port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
        for family, kind, proto, _, address in dict.fromkeys(found):
            try:
                listener = socket.socket(family, kind, proto)
            except OSError:
                continue  # a family this machine lacks (IPv6 off), as create_server skips it
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # `::` is IPv6 only; IPv4 gets its own socket
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(2048)
    except OSError as error:
        for listener in listeners:
            listener.close()
        raise _cannot_listen(settings, error) from None
    if not listeners:
        raise _cannot_listen(settings, OSError("no usable address"))
    return listeners


def _cannot_listen(settings: Settings, error: OSError) -> typer.Exit:
    reason = error.strerror or str(error)
    typer.secho(
        f"hcp: cannot listen on {settings.host}:{settings.port}: {reason}", err=True, fg="red"
    )
    return typer.Exit(1)


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


async def _serve_live(
    runtime: bootstrap.Runtime,
    speed: float,
    listeners: list[socket.socket],
    device_file: DeviceFile | None = None,
) -> None:
    live = await bootstrap.start_live(runtime, device_file)
    # The simulated site, drivers and control loop live as long as the process too: out of
    # the GC's passes, a full collection walks 0.04 s instead of 0.2 s at 10,000 miners.
    gc.collect()
    gc.freeze()
    settings = runtime.settings
    control = asyncio.create_task(
        bootstrap.run_control(runtime, live, settings.tick_seconds / speed, settings.poll_seconds)
    )
    try:
        await _server(settings, runtime).serve(sockets=listeners)
    finally:
        control.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await control
        await bootstrap.stop_live(live)


def _announce(settings: Settings, keys: dict[str, str] | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(f"HCP {settings.env} on {url}  (API docs: {url}/docs)")
    if keys:
        path = settings.var_dir / DEMO_KEYS_FILE
        typer.echo(f"First start: demo API keys (also in {path}, mode 0600):")
        typer.echo(f"  admin:    {keys['admin']}")
        typer.echo(f"  customer: {keys['customer']}  (customer {keys['customer_id']})")
        if "admin_email" in keys:
            typer.echo(f"Dashboard {url}/login:")
            typer.echo(f"  {keys['admin_email']} / {keys['admin_password']}")
            typer.echo(f"  {keys['customer_email']} / {keys['customer_password']}")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per device request would drown everything else the platform says.
    logging.getLogger("httpx").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
