"""platform clock: each site's platform time against the wall, for API processes to follow

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_clock",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("wall_at", sa.DateTime(), nullable=False),
        sa.Column("platform_at", sa.DateTime(), nullable=False),
        sa.Column("speed", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_platform_clock")),
    )


def downgrade() -> None:
    op.drop_table("platform_clock")
