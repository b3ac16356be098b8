"""workload checkpoints: the progress of each workload's last checkpoint known, beside the time
it was seen, so a run whose nodes are lost resumes there rather than from the start

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("checkpoint_progress", sa.Float(), nullable=False, server_default="0")
        )
    # A checkpointable workload waiting to run again resumes from its stored progress: that is
    # its last checkpoint. A running one's progress is not (it ran on since).
    op.execute(
        "UPDATE workloads SET checkpoint_progress = progress"
        " WHERE checkpointable AND state IN ('queued', 'scheduled', 'preempted')"
    )


def downgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("checkpoint_progress")
