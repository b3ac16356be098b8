"""What the command-line tools say when the database cannot be reached, read or is behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError


def shown(url: str) -> str:
    """The URL as it may be printed: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """A database that cannot be reached, opened or migrated ends the command with one line
    naming it and why (exit 1), not a traceback."""
    try:
        yield
    except (SQLAlchemyError, CommandError, ModuleNotFoundError, OSError) as error:
        fail(f"database {shown(url)}: {reason(error)}")


def reason(error: BaseException) -> str:
    """The first line of what went wrong, from the driver's own error when there is one."""
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip() or type(cause).__name__
    if isinstance(error, ModuleNotFoundError):
        text = f"its driver is not installed ({text})"
    return text.splitlines()[0]


def require_existing(url: str) -> None:
    """Stop unless a SQLite database's file exists. Called before the engine is made: making
    it creates the file's folder."""
    parsed = make_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not Path(file).is_file():
        fail(f"no database at {file}: run `hcp db upgrade` (or `hcp up`) first")


def require_migrated(engine: Engine, url: str) -> None:
    """Stop unless the database exists and is at the newest schema; creates nothing."""
    from hcp.adapters.db.migrate import is_current

    require_existing(url)
    if not is_current(engine):
        fail(f"database {shown(url)} is not at the newest schema: run `hcp db upgrade`")


def fail(message: str) -> NoReturn:
    typer.secho(f"hcp: {message}", err=True, fg="red")
    raise typer.Exit(1)
