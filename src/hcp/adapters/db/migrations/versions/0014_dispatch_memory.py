"""dispatch memory: what a site's miner dispatcher remembers of each miner (unhealthy spells and
the hold they keep, degradations, commands in flight and attempts, minimum on and off times),
so that a restarted controller or a standby taking the site over carries on from it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispatch_memory",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("pending", sa.JSON(), nullable=True),
        sa.Column("confirmed", sa.JSON(), nullable=True),
        sa.Column("failed", sa.JSON(), nullable=True),
        sa.Column("degraded_until", sa.DateTime(), nullable=True),
        sa.Column("last_mining", sa.JSON(), nullable=True),
        sa.Column("trouble", sa.Text(), nullable=True),
        sa.Column("trouble_last_seen", sa.DateTime(), nullable=True),
        sa.Column("trouble_trips", sa.Integer(), nullable=True),
        sa.Column("troubled", sa.Boolean(), nullable=False),
        sa.Column("slept_at", sa.DateTime(), nullable=True),
        sa.Column("woken_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("site_id", "device_id", name=op.f("pk_dispatch_memory")),
    )


def downgrade() -> None:
    op.drop_table("dispatch_memory")
