"""`hcp db ...`: schema migrations."""

from __future__ import annotations

import typer

from hcp.cli.database import database_errors, fail, shown
from hcp.cli.settings import load_settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply migrations up to REVISION (default: the newest); never goes back."""
    from hcp.adapters.db.engine import make_engine
    from hcp.adapters.db.migrate import current_revision, known_revisions
    from hcp.adapters.db.migrate import upgrade as upgrade_schema

    settings = load_settings()
    url = settings.effective_database_url
    with database_errors(url):
        engine = make_engine(url)
        try:
            known = known_revisions(engine)
            if revision != "head" and revision not in known:
                fail(f"no migration {revision!r}: known are {', '.join(known)} and head")
            before = current_revision(engine)
            behind = revision != "head" and before in known
            if behind and known.index(str(before)) > known.index(revision):
                fail(f"database {shown(url)} is at {before}, past {revision}: it never goes back")
            upgrade_schema(engine, revision)
            after = current_revision(engine)
        finally:
            engine.dispose()
    typer.echo(f"database at {after}: {shown(url)}")
