"""dispatch command ids: room for the longest device id, action, attempt and instant

A command id is `{device id}:{action}:{attempt}@{ISO instant}`: a profile command for a device
of the default site with a sub-second instant is 66 characters, and PostgreSQL refused the
whole batch of commands it was written with.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dispatch_commands") as batch:
        batch.alter_column("id", existing_type=sa.String(length=64), type_=sa.String(length=160))


def downgrade() -> None:
    # Ids longer than the old width cannot go back into it: they are cut, as the width allows.
    op.execute(sa.text("UPDATE dispatch_commands SET id = substr(id, 1, 64) WHERE length(id) > 64"))
    with op.batch_alter_table("dispatch_commands") as batch:
        batch.alter_column("id", existing_type=sa.String(length=160), type_=sa.String(length=64))
