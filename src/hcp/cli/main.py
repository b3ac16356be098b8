"""`hcp`: run the platform, migrate the database, talk to the API.

Commands import their implementation when they run, so `hcp --help` and the API client
commands start fast (the server stack, SciPy and the ORM load only where they are used).
"""

from __future__ import annotations

from pathlib import Path

import typer

import hcp
from hcp.adapters.clock import MAX_SPEED
from hcp.cli import billing, db, identity, sim, workloads

app = typer.Typer(
    help="HCP — hybrid compute platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(workloads.app, name="workloads")
app.add_typer(identity.users, name="users")
app.add_typer(identity.keys, name="keys")
app.add_typer(identity.customers, name="customers")
app.add_typer(billing.app, name="billing")
app.add_typer(sim.app, name="sim")

HostOption = typer.Option(None, help="bind address (HCP_HOST)")
PortOption = typer.Option(None, help="port (HCP_PORT)")


@app.command()
def up(
    host: str | None = HostOption,
    port: int | None = PortOption,
    speed: float = typer.Option(
        1.0, min=0.001, max=MAX_SPEED, help="run market and fleet time N times faster"
    ),
    asics: int | None = typer.Option(None, min=0, help="simulated miners (HCP_SITE_ASICS)"),
    gpus: int | None = typer.Option(None, min=0, help="simulated GPUs (HCP_SITE_GPUS)"),
) -> None:
    """Migrate, provision the simulated site, and serve API + simulation on one port."""
    from hcp.cli.serve import serve_platform

    serve_platform(host, port, speed, asics, gpus)


@app.command()
def api(host: str | None = HostOption, port: int | None = PortOption) -> None:
    """Serve the API alone against an already migrated database (scale-out replica)."""
    from hcp.cli.serve import serve_api

    serve_api(host, port)


@app.command()
def controller(
    speed: float = typer.Option(
        1.0, min=0.001, max=MAX_SPEED, help="run market and fleet time N times faster"
    ),
    asics: int | None = typer.Option(None, min=0, help="simulated miners (HCP_SITE_ASICS)"),
    gpus: int | None = typer.Option(None, min=0, help="simulated GPUs (HCP_SITE_GPUS)"),
) -> None:
    """Run the site's control loop without the API; stand by while another process leads it."""
    from hcp.cli.serve import serve_controller

    serve_controller(speed, asics, gpus)


@app.command("backtest")
def backtest_command(
    scenario: Path = typer.Argument(..., help="scenario TOML (docs/scenario-format.md)"),
    strategy: str = typer.Option("all", help="always_on, breakeven, mpc, oracle or all"),
    json_output: bool = typer.Option(False, "--json", help="one JSON object per strategy"),
    report: Path | None = typer.Option(None, help="write an HTML report into this folder"),
) -> None:
    """Replay a scenario with one or all strategies and compare them with the oracle."""
    from hcp.cli.backtest import backtest

    backtest(scenario, strategy, json_output, report)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(hcp.__version__)
