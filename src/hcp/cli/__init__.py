"""The `hcp` command line (Typer)."""
