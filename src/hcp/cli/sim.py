"""`hcp sim asic|gpu|market`: one simulator as its own process (scale-out and demos)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import typer

app = typer.Typer(help="Run a simulator as its own process.", no_args_is_help=True)


@app.command()
def asic(
    count: int = typer.Option(50, min=1, help="miners"),
    model: str = typer.Option("S21", help="ASIC model from the catalog"),
    ips: bool = typer.Option(
        False, help="one loopback IP per miner on port 4028 (as pyasic expects)"
    ),
    first_ip: str = typer.Option("127.1.0.1", help="first loopback IP with --ips"),
    first_port: int = typer.Option(14028, help="first port on 127.0.0.1 without --ips"),
) -> None:
    """LuxOS-flavoured CGMiner RPC miners on loopback until interrupted."""
    from hcp.domain.catalog import asic_model
    from hcp.simulators.asic import serve_fleet
    from hcp.simulators.asic.config import Addressing, uniform_fleet

    addressing = Addressing.IPS if ips else Addressing.PORTS
    config = uniform_fleet(
        asic_model(model), count, addressing=addressing, first_ip=first_ip, first_port=first_port
    )
    where = f"{first_ip}.. :4028" if ips else f"127.0.0.1:{first_port}..{first_port + count - 1}"
    typer.echo(f"{count} simulated {model} miners on {where}")
    asyncio.run(serve_fleet(config))


@app.command()
def gpu(
    nodes: int = typer.Option(2, min=1, help="GPU nodes"),
    gpus_per_node: int = typer.Option(8, min=1),
    model: str = typer.Option("H100 SXM", help="GPU model from the catalog"),
    port: int = typer.Option(9400, help="one port for every node: /nodes/{host}/metrics, /v1/..."),
) -> None:
    """GPU nodes (DCGM-exporter metrics and node-agent API) on 127.0.0.1 until interrupted."""
    from hcp.domain.catalog import gpu_model
    from hcp.simulators.gpu import GpuSimConfig, serve_nodes

    config = GpuSimConfig.uniform(gpu_model(model), nodes, gpus_per_node, port=port)
    typer.echo(f"{nodes} nodes × {gpus_per_node} {model} on http://127.0.0.1:{port}/nodes/<host>")
    asyncio.run(serve_nodes(config))


@app.command()
def market(
    step_minutes: float = typer.Option(5.0, min=0.01, help="market interval"),
    speed: float = typer.Option(60.0, min=0.001, help="market seconds per wall second"),
    seed: int = typer.Option(42),
    node: str = typer.Option("HB_WEST"),
    count: int = typer.Option(0, min=0, help="stop after this many snapshots (0: never)"),
) -> None:
    """Print one market snapshot per interval as a JSON line (seeded, reproducible)."""
    from hcp.adapters.market.simulated import MarketSimulatorConfig, SimulatedMarketFeed

    step = timedelta(minutes=step_minutes)
    feed = SimulatedMarketFeed(
        MarketSimulatorConfig(nodes=(node,)), start=datetime.now(UTC), step=step, seed=seed
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
