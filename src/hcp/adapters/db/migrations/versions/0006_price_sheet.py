"""price sheet set by admins

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 07:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "price_sheet",
        sa.Column("workload_class", sa.String(length=32), nullable=False),
        sa.Column("gpu_family", sa.String(length=32), nullable=False),
        sa.Column("usd_per_gpu_hour", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workload_class", "gpu_family", name=op.f("pk_price_sheet")),
    )


def downgrade() -> None:
    op.drop_table("price_sheet")
