"""`python -m hcp ...`: the `hcp` command, for where its script is not on the PATH."""

from hcp.cli.main import app

app(prog_name="hcp")
