"""`hcp sim asic|gpu|market`: one simulator as its own process (scale-out and demos)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hcp.adapters.clock import MAX_SPEED
from hcp.aio import run_on_uvloop
from hcp.gc_tuning import settle_heap

if TYPE_CHECKING:
    from hcp.simulators.asic import AsicFleetSimulator, Faults, FleetSimConfig
    from hcp.simulators.gpu import GpuSimConfig

MAX_PORT = 65_535
_PORT_PROBLEMS = {
    errno.EADDRINUSE: "is already in use",
    errno.EACCES: "may not be listened on by this user",
}
"""Why a port cannot be listened on, for the failures that another --port fixes."""

app = typer.Typer(help="Run a simulator as its own process.", no_args_is_help=True)


@app.command()
def asic(
    count: int = typer.Option(50, min=1, help="miners"),
    model: str = typer.Option("S21", help="ASIC model from the catalog"),
    ips: bool = typer.Option(
        False, help="one loopback IP per miner on port 4028 (as pyasic expects)"
    ),
    first_ip: str = typer.Option("127.1.0.1", help="first loopback IP with --ips"),
    first_port: int = typer.Option(
        14028, help="first port on 127.0.0.1 without --ips (0: any free ports)"
    ),
    faults: Path | None = typer.Option(
        None,
        dir_okay=False,
        help="TOML file of faults per miner index or range, e.g. [3] offline = true",
    ),
) -> None:
    """LuxOS-flavoured CGMiner RPC miners on loopback until interrupted.

    Prints where each miner answers once all listen (miner indexes as --faults uses them).
    """
    from hcp.simulators.asic import serve_fleet

    config = _fleet_config(count, model, ips, first_ip, first_port, faults)
    try:
        run_on_uvloop(serve_fleet(config, on_ready=lambda fleet: _ready(fleet, model)))
    except OSError as error:
        typer.secho(f"hcp: cannot start the simulated miners: {error}", err=True, fg="red")
        raise typer.Exit(1) from None


def _fleet_config(
    count: int, model: str, ips: bool, first_ip: str, first_port: int, faults: Path | None
) -> FleetSimConfig:
    """The fleet the options describe; BadParameter (or a DataError message) before anything
    starts when they cannot work."""
    from hcp.domain.catalog import ASIC_MODELS
    from hcp.simulators.asic.config import Addressing, uniform_fleet

    if model not in ASIC_MODELS:
        known = ", ".join(ASIC_MODELS)
        raise typer.BadParameter(
            f"unknown ASIC model {model!r} (known: {known})", param_hint="--model"
        )
    if ips:
        _check_loopback_range(first_ip, count)
    else:
        _check_port_range(first_port, count)
    fault_map = _load_faults(faults, count) if faults is not None else None
    return uniform_fleet(
        ASIC_MODELS[model],
        count,
        addressing=Addressing.IPS if ips else Addressing.PORTS,
        first_ip=first_ip,
        first_port=first_port,
        faults=fault_map,
    )


def _check_port_range(first_port: int, count: int) -> None:
    if not 0 <= first_port <= MAX_PORT:
        raise typer.BadParameter(
            f"{first_port} is not a TCP port (0-{MAX_PORT})", param_hint="--first-port"
        )
    last = first_port + count - 1
    if first_port and last > MAX_PORT:
        raise typer.BadParameter(
            f"{count} miners from port {first_port} need ports up to {last}, above {MAX_PORT}; "
            f"use --first-port {MAX_PORT - count + 1} or lower, 0 for any free ports, or --ips",
            param_hint="--first-port",
        )


def _check_loopback_range(first_ip: str, count: int) -> None:
    from hcp.simulators.asic.config import loopback_hosts

    try:
        address = ipaddress.IPv4Address(first_ip)
    except ValueError:
        raise typer.BadParameter(
            f"{first_ip!r} is not an IPv4 address", param_hint="--first-ip"
        ) from None
    if not address.is_loopback:
        raise typer.BadParameter(
            f"{first_ip} is not a loopback address (127.x.y.z): simulated miners never "
            "listen on a real network",
            param_hint="--first-ip",
        )
    try:
        for _ in loopback_hosts(first_ip, count):
            pass
    except ValueError as error:
        raise typer.BadParameter(
            f"{count} miners from {first_ip}: {error}", param_hint="--first-ip"
        ) from None


def _load_faults(path: Path, count: int) -> dict[int, Faults]:
    from hcp.domain.errors import DataError
    from hcp.simulators.asic.faultfile import load_faults

    try:
        return load_faults(path, count)
    except DataError as error:
        typer.secho(f"hcp: {error}", err=True, fg="red")
        raise typer.Exit(2) from None


def _ready(fleet: AsicFleetSimulator, model: str) -> None:
    """Every miner listens: say where, and leave the fleet out of the collector's passes."""
    _announce(fleet, model)
    settle_heap()


def _announce(fleet: AsicFleetSimulator, model: str) -> None:
    """Where each miner answers, now that all listen: runs of miners at consecutive addresses
    on one line (`miners 0-49: 127.0.0.1:14028-14077`), offline ones marked."""
    offline = sum(1 for sim in fleet.miners if sim.faults.offline)
    note = f", {offline} offline" if offline else ""
    typer.echo(f"{len(fleet.miners)} simulated {model} miners (LuxOS RPC{note}); Ctrl-C stops:")
    places = [
        None if sim.faults.offline else address
        for sim, address in zip(fleet.miners, fleet.addresses, strict=True)
    ]
    for first, last in _runs(places):
        which = f"miner {first}" if first == last else f"miners {first}-{last}"
        typer.echo(f"  {which}: {_where(places[first], places[last])}")


def _runs(places: list[tuple[str, int] | None]) -> Iterator[tuple[int, int]]:
    """(first, last) index of each run of offline miners, of consecutive ports on one host, or
    of consecutive IPs on one port."""
    first, kind = 0, None
    for i in range(1, len(places) + 1):
        step = _step(places[i - 1], places[i]) if i < len(places) else None
        if step is not None and kind in (None, step):
            kind = step
            continue
        yield first, i - 1
        first, kind = i, None


def _step(previous: tuple[str, int] | None, current: tuple[str, int] | None) -> str | None:
    """How `current` follows `previous`: "offline" both, "port" next, "ip" next, or not (None)."""
    if previous is None or current is None:
        return "offline" if previous is None and current is None else None
    host, port = previous
    if current == (host, port + 1):
        return "port"
    if current == (str(ipaddress.ip_address(host) + 1), port):
        return "ip"
    return None


def _where(first: tuple[str, int] | None, last: tuple[str, int] | None) -> str:
    if first is None or last is None:
        return "offline (nothing listens)"
    if first == last:
        return f"{first[0]}:{first[1]}"
    if first[0] == last[0]:
        return f"{first[0]}:{first[1]}-{last[1]}"
    return f"{first[0]}-{last[0]}, port {first[1]}"


@app.command()
def gpu(
    nodes: int = typer.Option(2, min=1, help="GPU nodes"),
    gpus_per_node: int = typer.Option(8, min=1),
    model: str = typer.Option("H100 SXM", help="GPU model from the catalog"),
    port: int = typer.Option(
        9400, min=1, max=65535, help="one port for every node: /nodes/{host}/metrics, /v1/..."
    ),
    prefix: str = typer.Option(
        "gpu-node",
        help="nodes are named PREFIX-001, PREFIX-002, ...; hcp up's site names its nodes "
        "SITE_ID-gpu-node (e.g. site-west-1-gpu-node), which HCP_DEVICES_FILE points at",
    ),
) -> None:
    """GPU nodes (DCGM-exporter metrics and node-agent API) on 127.0.0.1 until interrupted."""
    config = _gpu_config(model, nodes, gpus_per_node, prefix, port)
    first, last = config.nodes[0].hostname, config.nodes[-1].hostname
    _serve_gpu_nodes(
        config,
        lambda: typer.echo(
            f"{nodes} nodes × {gpus_per_node} {model} ({first}..{last}) on "
            f"http://127.0.0.1:{port}/nodes/<node>"
        ),
    )


def _gpu_config(model: str, nodes: int, gpus_per_node: int, prefix: str, port: int) -> GpuSimConfig:
    """The GPU nodes the options describe; BadParameter before anything starts when they
    cannot work (an unknown model, a prefix that makes invalid node names)."""
    from hcp.domain.catalog import GPU_MODELS
    from hcp.domain.errors import ValidationError
    from hcp.simulators.gpu import GpuSimConfig, build_nodes

    if model not in GPU_MODELS:
        known = ", ".join(GPU_MODELS)
        raise typer.BadParameter(
            f"unknown GPU model {model!r} (known: {known})", param_hint="--model"
        )
    config = GpuSimConfig.uniform(GPU_MODELS[model], nodes, gpus_per_node, prefix=prefix, port=port)
    try:
        build_nodes(config)  # the nodes check their names as they will when served
    except ValidationError as error:
        raise typer.BadParameter(
            f"{prefix!r} makes node names like {config.nodes[-1].hostname!r}, and a node name "
            f"must be {error.message}",
            param_hint="--prefix",
        ) from None
    return config


def _serve_gpu_nodes(config: GpuSimConfig, on_ready: Callable[[], None]) -> None:
    """Serve `config` until interrupted (`on_ready` once listening); a port that cannot be
    listened on is a bad --port, any other failure to start is reported as `hcp sim asic`
    reports it."""
    from hcp.simulators.gpu import serve_nodes

    try:
        asyncio.run(serve_nodes(config, on_ready=on_ready))
    except OSError as error:
        problem = _PORT_PROBLEMS.get(error.errno or 0)
        if problem is None:
            typer.secho(f"hcp: cannot start the simulated GPU nodes: {error}", err=True, fg="red")
            raise typer.Exit(1) from None
        raise typer.BadParameter(
            f"{config.host}:{config.port} {problem}; choose another port", param_hint="--port"
        ) from None


@app.command()
def market(
    step_minutes: float = typer.Option(5.0, min=0.01, help="market interval"),
    speed: float = typer.Option(
        60.0, min=0.001, max=MAX_SPEED, help="market seconds per wall second"
    ),
    seed: int = typer.Option(42, min=0, help="seed of the simulated market"),
    node: str = typer.Option("HB_WEST"),
    count: int = typer.Option(0, min=0, help="stop after this many snapshots (0: never)"),
    start: datetime | None = typer.Option(
        None,
        formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"],
        help="market time of the first snapshot (UTC); default: now",
    ),
) -> None:
    """Print one market snapshot per interval as a JSON line (seeded: the same seed and
    --start give the same snapshots)."""
    from hcp.adapters.market.simulated import MarketSimulatorConfig, SimulatedMarketFeed

    step = _market_step(step_minutes)
    feed = SimulatedMarketFeed(
        MarketSimulatorConfig(nodes=(node,)),
        start=datetime.now(UTC) if start is None else start.replace(tzinfo=UTC),
        step=step,
        seed=seed,
    )
    produced = 0
    while count == 0 or produced < count:
        s = feed.next_snapshot()
        line = {
            "at": s.at.isoformat(),
            "electricity_usd_per_mwh": dict(s.electricity_usd_per_mwh),
            "btc_usd": s.btc_usd,
            "difficulty": s.difficulty,
            "fees_btc_per_day": s.fees_btc_per_day,
            "gpu_spot_usd_per_gpu_hour": dict(s.gpu_spot_usd_per_gpu_hour),
        }
        typer.echo(json.dumps(line))
        produced += 1
        if count == 0 or produced < count:
            time.sleep(step.total_seconds() / speed)


def _market_step(minutes: float) -> timedelta:
    """--step-minutes as a step; BadParameter unless it is a whole number of seconds (the
    simulated market's steps)."""
    try:
        step = timedelta(minutes=minutes)
    except (OverflowError, ValueError):
        raise typer.BadParameter(f"{minutes} is not a step", param_hint="--step-minutes") from None
    if step % timedelta(seconds=1):
        raise typer.BadParameter(
            f"{minutes} minutes is {step.total_seconds():g} s: the simulated market steps in "
            "whole seconds",
            param_hint="--step-minutes",
        )
    return step
