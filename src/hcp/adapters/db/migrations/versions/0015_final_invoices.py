"""final invoices: each usage record names the final invoice that bills it, so usage of a month
stored after its final invoice (late usage) is told apart and billed on a later invoice, and
an invoice line billing late usage names the month it ran in

Usage stored before this migration, in a month with a final invoice, is marked as billed on
it: an invoice issued again used to be rebuilt from all of its month's usage, and what was
metered since the last issue cannot be told apart any more.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Naive UTC, as the schema stores times on both backends.
_invoices = sa.table(
    "invoices",
    sa.column("id", sa.String()),
    sa.column("customer_id", sa.String()),
    sa.column("month", sa.String()),
    sa.column("created_at", sa.DateTime()),
)
_usage = sa.table(
    "usage_records",
    sa.column("customer_id", sa.String()),
    sa.column("interval_start", sa.DateTime()),
    sa.column("invoice_id", sa.String()),
)


def _month(month: str) -> tuple[datetime, datetime]:
    """The naive UTC instants [start, end) of "YYYY-MM"."""
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1), datetime(year + number // 12, number % 12 + 1, 1)


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_id", sa.String(length=80), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_usage_records_invoice_id_invoices"), "invoices", ["invoice_id"], ["id"]
        )
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_usage_month", sa.String(length=7), nullable=True))
    bind = op.get_bind()
    for invoice, customer, month, issued in bind.execute(sa.select(_invoices)).all():
        start, end = _month(month)
        if issued >= end:  # final: it billed its month's usage
            bind.execute(
                sa.update(_usage)
                .where(
                    _usage.c.customer_id == customer,
                    _usage.c.interval_start >= start,
                    _usage.c.interval_start < end,
                )
                .values(invoice_id=invoice)
            )


def downgrade() -> None:
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.drop_column("late_usage_month")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_usage_records_invoice_id_invoices"), type_="foreignkey"
        )
        batch_op.drop_column("invoice_id")
