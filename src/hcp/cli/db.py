"""`hcp db ...`: schema migrations."""

from __future__ import annotations

import typer

from hcp.cli.settings import load_settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from hcp.adapters.db.engine import make_engine
    from hcp.adapters.db.migrate import upgrade as upgrade_schema

    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade_schema(engine, revision)
    finally:
        engine.dispose()
    typer.echo(f"database at {revision}: {engine.url.render_as_string(hide_password=True)}")
