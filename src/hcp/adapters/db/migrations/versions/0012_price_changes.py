"""price changes: every list price set, from its instant on, so usage is priced as it ran; they
replace the price sheet of the latest prices, which the newest change of each price gives

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "price_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workload_class", sa.String(length=32), nullable=False),
        sa.Column("gpu_family", sa.String(length=32), nullable=False),
        sa.Column("usd_per_gpu_hour", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_changes")),
    )
    op.create_index(
        op.f("ix_price_changes_effective_at"), "price_changes", ["effective_at"], unique=False
    )
    # The prices set before: in force from when they were set (what came before stays priced
    # at them too; nothing older was kept).
    op.execute(
        "INSERT INTO price_changes (workload_class, gpu_family, usd_per_gpu_hour, effective_at) "
        "SELECT workload_class, gpu_family, usd_per_gpu_hour, updated_at FROM price_sheet"
    )
    op.drop_table("price_sheet")


def downgrade() -> None:
    op.create_table(
        "price_sheet",
        sa.Column("workload_class", sa.String(length=32), nullable=False),
        sa.Column("gpu_family", sa.String(length=32), nullable=False),
        sa.Column("usd_per_gpu_hour", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workload_class", "gpu_family", name=op.f("pk_price_sheet")),
    )
    op.execute(
        "INSERT INTO price_sheet (workload_class, gpu_family, usd_per_gpu_hour, updated_at) "
        "SELECT c.workload_class, c.gpu_family, c.usd_per_gpu_hour, c.effective_at "
        "FROM price_changes c WHERE c.id = (SELECT MAX(d.id) FROM price_changes d "
        "WHERE d.workload_class = c.workload_class AND d.gpu_family = c.gpu_family)"
    )
    op.drop_index(op.f("ix_price_changes_effective_at"), table_name="price_changes")
    op.drop_table("price_changes")
