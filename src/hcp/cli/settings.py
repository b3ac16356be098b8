"""Load Settings for a CLI command, turning a bad setting into a clear message."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from hcp.config import Settings


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment / HCP_CONFIG, with CLI overrides that were given."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except (ValidationError, FileNotFoundError) as exc:
        typer.secho(f"hcp: bad configuration: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
