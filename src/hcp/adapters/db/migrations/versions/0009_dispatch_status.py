"""dispatch status: each site's last tick of miner dispatch, for every API process to read

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispatch_status",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("commands", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("power_increase_w", sa.Float(), nullable=False),
        sa.Column("deferred", sa.JSON(), nullable=False),
        sa.Column("shortfall", sa.JSON(), nullable=False),
        sa.Column("unhealthy", sa.JSON(), nullable=False),
        sa.Column("degraded", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_dispatch_status")),
    )


def downgrade() -> None:
    op.drop_table("dispatch_status")
