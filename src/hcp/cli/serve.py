"""`hcp up` (the whole platform in one process), `hcp api` (the API alone) and `hcp controller`
(the control loop alone, standing by while another process leads the site)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Iterator

import typer
import uvicorn

from hcp import bootstrap
from hcp.adapters.clock import FollowedClock, ScaledClock, SystemClock
from hcp.adapters.db.leadership import leadership_for
from hcp.adapters.db.platform_clock import SqlClockAnchors
from hcp.adapters.devices.site_file import DeviceFile, load_device_file
from hcp.aio import run_on_uvloop
from hcp.cli.database import database_errors, require_existing, require_migrated
from hcp.cli.settings import load_settings
from hcp.config import DEMO_KEYS_FILE, Settings
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import DataError
from hcp.gc_tuning import settle_heap
from hcp.http.app import create_app
from hcp.services.events import BusUnavailable
from hcp.services.leadership import lead
from hcp.services.ports import Clock, Leadership

log = logging.getLogger(__name__)


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
    device_file = _device_file(settings)
    # The port is claimed before anything else: the simulated site opens hundreds of sockets
    # on ports the kernel picks, and one of them must not take the port the user asked for.
    url = settings.effective_database_url
    with _listening(settings) as listeners:
        with database_errors(url):
            runtime = bootstrap.build(settings, _clock(device_file, speed))
        leadership = leadership_for(runtime.engine, settings.site_id, settings.var_dir)
        with _closing(runtime, leadership):
            with database_errors(url):
                acquired = leadership.try_acquire()
            if not acquired:
                typer.secho(
                    f"hcp: site {settings.site_id} is controlled by another process on this "
                    "database (an `hcp up` or `hcp controller`); run `hcp api` for another API "
                    "replica, or `hcp controller` to stand by for the site",
                    err=True,
                    fg="red",
                )
                raise typer.Exit(1)
            with database_errors(url):
                keys = _prepare(runtime, asics, gpus, device_file)
            _announce(settings, keys)
            # Everything built so far lives as long as the process: out of every GC pass.
            settle_heap()
            run_on_uvloop(_serve_live(runtime, leadership, speed, listeners, device_file))


def serve_controller(speed: float = 1.0, asics: int | None = None, gpus: int | None = None) -> None:
    """`hcp controller`: the site's control loop without the API, once this process leads it."""
    settings = load_settings(site_asics=asics, site_gpus=gpus)
    _configure_logging(settings)
    device_file = _device_file(settings)
    with database_errors(settings.effective_database_url):
        runtime = bootstrap.build(settings, _clock(device_file, speed))
    leadership = leadership_for(runtime.engine, settings.site_id, settings.var_dir)

    async def control() -> None:
        # Prepared anew on each lead: the store may have moved on while this one stood by.
        keys = await asyncio.to_thread(_prepare, runtime, asics, gpus, device_file)
        if keys:
            _announce(settings, keys, serving=False)
        await _control_site(runtime, speed, await bootstrap.start_live(runtime, device_file))

    async def stand_by() -> None:
        # A bus that does not answer stops a standby now, not when it takes the lead.
        await bootstrap.check_bus(settings)
        await lead(leadership, control, check_s=settings.leader_check_seconds)

    with _closing(runtime, leadership):
        run_on_uvloop(_until_stopped(stand_by()))


@contextlib.contextmanager
def _closing(runtime: bootstrap.Runtime, leadership: Leadership) -> Iterator[None]:
    """Let the site go and close the runtime on the way out; a DataError (the devices file
    does not fit the stored site) or a bus that does not answer (at start, or when a standby
    takes the lead) ends the command with its message."""
    try:
        yield
    except DataError as error:
        typer.secho(f"hcp: {error}", err=True, fg="red")
        raise typer.Exit(1) from None
    except BusUnavailable as error:
        typer.secho(f"hcp: {error} (check HCP_BUS_URL)", err=True, fg="red")
        raise typer.Exit(1) from None
    finally:
        leadership.close()
        runtime.close()


def _device_file(settings: Settings) -> DeviceFile | None:
    """The settings' devices file, read before anything starts: a mistake there stops the
    command with its file and line."""
    if settings.devices_file is None:
        return None
    try:
        return load_device_file(settings.devices_file)
    except DataError as error:
        typer.secho(f"hcp: {error}", err=True, fg="red")
        raise typer.Exit(1) from None


def _clock(device_file: DeviceFile | None, speed: float) -> Clock:
    """A simulated site's clock resumes at stored history ahead of it; devices elsewhere keep
    wall time, and so does the platform with them."""
    elsewhere = device_file is not None and speed == 1.0
    return SystemClock() if elsewhere else ScaledClock(speed)


def _prepare(
    runtime: bootstrap.Runtime,
    asics: int | None,
    gpus: int | None,
    device_file: DeviceFile | None = None,
) -> dict[str, str] | None:
    try:
        asked = {DeviceKind.ASIC: asics, DeviceKind.GPU: gpus}
        fleet_asked = [kind for kind, count in asked.items() if count is not None]
        return bootstrap.prepare(runtime, fleet_asked=fleet_asked, device_file=device_file)
    except bootstrap.FleetMismatch as error:
        typer.secho(f"hcp: {error}", err=True, fg="red")
        raise typer.Exit(1) from None


async def _until_stopped(work: Awaitable[None]) -> None:
    """Run `work` until it ends or SIGTERM/SIGINT arrives (then cancel it, so it cleans up:
    miners' sessions are given back, simulators stopped). A second signal while it cleans up
    does not cut the clean-up short: a miner left logged on refuses the next leader."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if task.cancelling():
            log.warning("already stopping: giving the miners' sessions back first")
            return
        task.cancel()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def serve_api(host: str | None, port: int | None) -> None:
    """`hcp api`: the API alone against an already migrated database."""
    settings = load_settings(host=host, port=port)
    _configure_logging(settings)
    with _listening(settings) as listeners:
        # Platform time as the process leading the site keeps it (sped up, or resumed ahead
        # of the wall after a sped-up run); people's time (sessions, rate limits) is the wall.
        clock = FollowedClock()
        url = settings.effective_database_url
        with database_errors(url):
            require_existing(url)
            runtime = bootstrap.build(settings, clock, wall=SystemClock())
        try:
            with database_errors(url):
                require_migrated(runtime.engine, url)  # a replica migrates nothing
            clock.follow(SqlClockAnchors(runtime.engine, settings.site_id).load)
            clock.start()
            run_on_uvloop(_server(runtime.settings, runtime).serve(sockets=listeners))
        finally:
            clock.stop()  # never started: nothing to stop
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
    host, port = settings.host, settings.port
    if not host:
        where = f"port {port} of every interface"
    else:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    typer.secho(f"hcp: cannot listen on {where}: {reason}", err=True, fg="red")
    return typer.Exit(1)


def _server(settings: Settings, runtime: bootstrap.Runtime) -> uvicorn.Server:
    token = settings.metrics_token
    app = create_app(
        runtime.platform,
        max_body_bytes=settings.max_body_bytes,
        metrics_token=None if token is None else token.get_secret_value(),
    )
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
    leadership: Leadership,
    speed: float,
    listeners: list[socket.socket],
    device_file: DeviceFile | None = None,
) -> None:
    """The API and, while this process leads the site (it does at start), the control loop:
    a lead lost stops the loop and the site; the API goes on, and the loop starts again if
    the lead comes back."""
    settings = runtime.settings
    started = [await bootstrap.start_live(runtime, device_file)]

    async def control() -> None:
        live = started.pop() if started else await bootstrap.start_live(runtime, device_file)
        await _control_site(runtime, speed, live)

    leading = asyncio.create_task(lead(leadership, control, check_s=settings.leader_check_seconds))
    server = _server(settings, runtime)

    def ended(task: asyncio.Task[None]) -> None:
        # The control loop is the platform's reason to run: if it stops for good (its
        # devices file no longer fits the site, say), so does the API, with its error.
        if not task.cancelled() and task.exception() is not None:
            server.should_exit = True

    leading.add_done_callback(ended)
    try:
        await server.serve(sockets=listeners)
    finally:
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading
        if started:  # stopped before the loop took it over
            await bootstrap.stop_live(started.pop())


async def _control_site(runtime: bootstrap.Runtime, speed: float, live: bootstrap.Live) -> None:
    """Run the control loop of a started site until cancelled, then stop the site."""
    try:
        # The simulated site, drivers and control loop live as long as the process too: out
        # of the GC's passes, a full collection walks 0.04 s instead of 0.2 s at 10,000 miners.
        settle_heap()
        settings = runtime.settings
        await bootstrap.run_control(
            runtime, live, settings.tick_seconds / speed, settings.poll_seconds
        )
    finally:
        await bootstrap.stop_live(live)


def _announce(settings: Settings, keys: dict[str, str] | None, serving: bool = True) -> None:
    url = settings.api_url
    if serving:
        typer.echo(f"HCP {settings.env} on {url}  (API docs: {url}/docs)")
    if keys:
        path = settings.var_dir / DEMO_KEYS_FILE
        typer.echo(f"First start: demo API keys (also in {path}, mode 0600):")
        typer.echo(f"  admin:    {keys['admin']}")
        typer.echo(f"  customer: {keys['customer']}  (customer {keys['customer_id']})")
        if "admin_email" in keys:
            # A controller serves no pages: its logins are for an API process on this store.
            where = f"{url}/login" if serving else "/login of `hcp api` on this database"
            typer.echo(f"Dashboard {where}:")
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
