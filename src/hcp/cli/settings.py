"""Load Settings for a CLI command, turning a bad setting into a clear message."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError

from hcp.config import Settings
from hcp.domain.errors import DataError
from hcp.tomlfile import TomlTable, load_toml


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment / HCP_CONFIG, with CLI overrides that were given; a bad
    setting stops the command with a message (for HCP_CONFIG: its file and line)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    config = os.environ.get("HCP_CONFIG")
    table = None
    try:
        if config and Path(config).is_file():
            table = load_toml(Path(config))  # its syntax, with file, line and column
        return Settings(**given)  # type: ignore[arg-type]
    except DataError as exc:
        _bad(str(exc))
    except ValidationError as exc:
        _bad("; ".join(_where(error, table) for error in exc.errors()))
    except FileNotFoundError as exc:
        _bad(str(exc))


def _where(error: object, table: TomlTable | None) -> str:
    """One validation error, at its HCP_CONFIG line when the setting is in that file."""
    details = error if isinstance(error, dict) else {}
    key = ".".join(str(part) for part in details.get("loc", ()))
    text = str(details.get("msg", error)).removeprefix("Value error, ")
    message = f"{key}: {text}" if key else text  # a rule over several settings names them
    if table is not None and key and table.has(key):
        return str(table.error(key, str(details.get("msg", error))))
    return message


def _bad(message: str) -> NoReturn:
    typer.secho(f"hcp: bad configuration: {message}", err=True, fg="red")
    raise typer.Exit(2)
