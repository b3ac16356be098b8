"""run GPUs: a workload's start event names the GPUs its run began on, so a run that has ended
(its GPUs released) is billed at the family of the GPUs it held, not guessed from its site

The run of a workload holding GPUs now (running, or cancelled before they were freed) began
on them at its latest start: that start is given them. Runs ended before this migration keep
no GPUs; billing prices them as it did (the site's one family, else H100).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_workloads = sa.table(
    "workloads",
    sa.column("id", sa.String()),
    sa.column("state", sa.String()),
    sa.column("gpu_ids", sa.JSON()),
)
_events = sa.table(
    "workload_events",
    sa.column("id", sa.Integer()),
    sa.column("workload_id", sa.String()),
    sa.column("event", sa.String()),
    sa.column("gpu_ids", sa.JSON(none_as_null=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("workload_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_ids", sa.JSON(), nullable=True))
    bind = op.get_bind()
    holding = sa.select(_workloads.c.id, _workloads.c.gpu_ids).where(
        _workloads.c.state.in_(("running", "cancelled"))
    )
    for workload_id, gpu_ids in bind.execute(holding).all():
        if not gpu_ids:
            continue
        # The GPUs are placed by the latest schedule; a start after it began the run on them.
        last = bind.execute(
            sa.select(_events.c.id, _events.c.event)
            .where(
                _events.c.workload_id == workload_id,
                _events.c.event.in_(("schedule", "start")),
            )
            .order_by(_events.c.id.desc())
            .limit(1)
        ).first()
        if last is not None and last.event == "start":
            bind.execute(
                sa.update(_events).where(_events.c.id == last.id).values(gpu_ids=list(gpu_ids))
            )


def downgrade() -> None:
    with op.batch_alter_table("workload_events", schema=None) as batch_op:
        batch_op.drop_column("gpu_ids")
