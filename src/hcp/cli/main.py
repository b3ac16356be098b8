"""`hcp`: run the platform, migrate the database, talk to the API."""

from __future__ import annotations

import typer

import hcp
from hcp.cli import db, serve, workloads

app = typer.Typer(
    help="HCP — hybrid compute platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(serve.up)
app.command("api")(serve.api)
app.add_typer(db.app, name="db")
app.add_typer(workloads.app, name="workloads")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(hcp.__version__)
