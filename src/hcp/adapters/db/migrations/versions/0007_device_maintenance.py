"""device maintenance: why, since when and by whom a device is left alone

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("maintenance", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("maintenance_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("maintenance_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("maintenance_by")
        batch.drop_column("maintenance_since")
        batch.drop_column("maintenance")
