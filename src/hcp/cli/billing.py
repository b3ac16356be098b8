"""`hcp billing ...`: issue invoices from stored usage (on the server, straight to the DB)."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from hcp.billing import Invoice
from hcp.cli.identity import SYSTEM, platform

app = typer.Typer(help="Usage and invoices.", no_args_is_help=True)
console = Console()


@app.command()
def invoice(month: str = typer.Option(..., help="YYYY-MM (UTC)")) -> None:
    """Issue every customer's invoice for MONTH from metered usage (reproducible). A final
    invoice is never changed: issued again, it is shown as it is; usage of its month metered
    after it is billed on the next invoice, as late usage."""
    with platform() as p:
        began = p.dashboard.now()
        invoices = p.billing.issue_all(month)
    table = Table("invoice", "customer", "lines", "total USD", "state")
    for i in invoices:
        table.add_row(i.id, i.customer_id, str(len(i.lines)), f"{i.total:.2f}", _state(i, began))
    console.print(table if invoices else f"no usage in {month}: no invoices")


def _state(i: Invoice, began: datetime) -> str:
    """Final or provisional; a final invoice issued before, kept as it is; late usage billed."""
    if not i.final:
        state = "provisional (the month has not ended)"
    elif i.issued_at is not None and i.issued_at < began:
        state = f"final, unchanged (issued {i.issued_at:%Y-%m-%d %H:%M} UTC)"
    else:
        state = "final"
    late = sorted({line.late_usage_month for line in i.lines if line.late_usage_month})
    if late:
        state += f"; late usage from {', '.join(late)}"
    return state


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
