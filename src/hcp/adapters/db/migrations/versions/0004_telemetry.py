"""telemetry store: series dictionary, inbox, raw samples, rollups

Replaces the unused `telemetry_samples` of 0001 (nothing was ever written to it) with the layout
`hcp.adapters.db.telemetry` documents: times as integer epoch milliseconds, samples keyed by
(series_id, at_ms), WITHOUT ROWID on SQLite.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_ROWID = {"sqlite_with_rowid": False}


def upgrade() -> None:
    with op.batch_alter_table("telemetry_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_samples_device_id_metric_at"))
    op.drop_table("telemetry_samples")

    op.create_table(
        "telemetry_series",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_series")),
        sa.UniqueConstraint(
            "device_id", "metric", name=op.f("uq_telemetry_series_device_id_metric")
        ),
    )
    op.create_table(
        "telemetry_inbox",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_table(
        "telemetry_samples",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "at_ms", name=op.f("pk_telemetry_samples")),
        **NO_ROWID,
    )
    op.create_table(
        "telemetry_rollups",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("bucket_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("value_sum", sa.Float(), nullable=False),
        sa.Column("value_min", sa.Float(), nullable=False),
        sa.Column("value_max", sa.Float(), nullable=False),
        sa.Column("value_last", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "series_id", "resolution", "bucket_start_ms", name=op.f("pk_telemetry_rollups")
        ),
        **NO_ROWID,
    )
    op.create_table(
        "telemetry_pending",
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket_start_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "resolution", "series_id", "bucket_start_ms", name=op.f("pk_telemetry_pending")
        ),
        **NO_ROWID,
    )
    op.create_table(
        "telemetry_horizons",
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resolution", name=op.f("pk_telemetry_horizons")),
    )


def downgrade() -> None:
    for table in (
        "telemetry_horizons",
        "telemetry_pending",
        "telemetry_rollups",
        "telemetry_samples",
        "telemetry_inbox",
        "telemetry_series",
    ):
        op.drop_table(table)

    op.create_table(
        "telemetry_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_samples")),
    )
    with op.batch_alter_table("telemetry_samples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_samples_device_id_metric_at"),
            ["device_id", "metric", "at"],
            unique=False,
        )
