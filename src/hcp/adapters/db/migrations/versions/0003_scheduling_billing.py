"""scheduling, dispatch and billing columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 05:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("checkpointed_at", sa.DateTime(), nullable=True))
    op.create_table(
        "preemptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("workload_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("lost_gpu_hours", sa.Float(), nullable=False),
        sa.Column("gpu_ids", sa.JSON(), nullable=False),
        sa.Column("for_workload_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["workload_id"], ["workloads.id"], name=op.f("fk_preemptions_workload_id_workloads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preemptions")),
    )
    with op.batch_alter_table("preemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_preemptions_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_preemptions_workload_id"), ["workload_id"], unique=False
        )
    op.create_table(
        "dispatch_commands",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("confirm_by", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome_at", sa.DateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_commands")),
    )
    with op.batch_alter_table("dispatch_commands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispatch_commands_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dispatch_commands_issued_at"), ["issued_at"], unique=False
        )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tier", sa.String(length=16), nullable=False, server_default="standard")
        )
        batch_op.add_column(sa.Column("rt_price_usd_per_mwh", sa.Numeric(18, 6), nullable=True))
        batch_op.add_column(
            sa.Column(
                "energy_source", sa.String(length=16), nullable=False, server_default="telemetry"
            )
        )
        batch_op.alter_column("gpu_type", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_index(batch_op.f("ix_usage_records_customer_id"))
        batch_op.create_index(
            batch_op.f("ix_usage_records_customer_id_interval_start"),
            ["customer_id", "interval_start"],
            unique=False,
        )
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=False, server_default="0"))
        batch_op.alter_column(
            "invoice_id", existing_type=sa.String(length=64), type_=sa.String(length=80)
        )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=sa.String(length=64), type_=sa.String(length=80))


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=sa.String(length=80), type_=sa.String(length=64))
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.alter_column(
            "invoice_id", existing_type=sa.String(length=80), type_=sa.String(length=64)
        )
        batch_op.drop_column("position")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_records_customer_id_interval_start"))
        batch_op.create_index(
            batch_op.f("ix_usage_records_customer_id"), ["customer_id"], unique=False
        )
        batch_op.alter_column("gpu_type", existing_type=sa.String(length=32), nullable=True)
        batch_op.drop_column("energy_source")
        batch_op.drop_column("rt_price_usd_per_mwh")
        batch_op.drop_column("tier")
    with op.batch_alter_table("dispatch_commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_commands_issued_at"))
        batch_op.drop_index(batch_op.f("ix_dispatch_commands_device_id"))
    op.drop_table("dispatch_commands")
    with op.batch_alter_table("preemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preemptions_workload_id"))
        batch_op.drop_index(batch_op.f("ix_preemptions_at"))
    op.drop_table("preemptions")
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("checkpointed_at")
        batch_op.drop_column("started_at")
        batch_op.drop_column("gpu_ids")
