"""`hcp billing ...`: issue invoices from stored usage (on the server, straight to the DB)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from hcp.cli.identity import SYSTEM, platform

app = typer.Typer(help="Usage and invoices.", no_args_is_help=True)
console = Console()


@app.command()
def invoice(month: str = typer.Option(..., help="YYYY-MM (UTC)")) -> None:
    """Build every customer's invoice for MONTH from metered usage (reproducible)."""
    with platform() as p:
        invoices = p.billing.issue_all(month)
    table = Table("invoice", "customer", "lines", "total USD", "state")
    for i in invoices:
        state = "final" if i.final else "provisional (the month has not ended)"
        table.add_row(i.id, i.customer_id, str(len(i.lines)), f"{i.total:.2f}", state)
    console.print(table if invoices else f"no usage in {month}: no invoices")


@app.command()
def usage(
    month: str = typer.Option(..., help="YYYY-MM (UTC)"),
    customer: str | None = typer.Option(None, help="one customer only"),
) -> None:
    """Print a month's metered usage as CSV."""
    with platform() as p:
        if customer is not None and customer not in {c.id for c in p.identity.customers(SYSTEM)}:
            typer.secho(f"hcp: unknown customer {customer!r}", err=True, fg="red")
            raise typer.Exit(1)
        typer.echo(p.billing.usage_csv(SYSTEM, month, customer), nl=False)
