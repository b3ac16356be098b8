"""The relational schema. Alembic migrations are generated from this metadata and reviewed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite keeps no zone: store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: HCP stores only timezone-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


Money = Numeric(18, 6, asdecimal=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        Decimal: Money,
        dict[str, Any]: JSON,
    }


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    node: Mapped[str] = mapped_column(String(64))
    capacity_mw: Mapped[float] = mapped_column(Float)
    pue: Mapped[float] = mapped_column(Float)
    contract: Mapped[dict[str, Any]] = mapped_column(JSON)


class RackRow(Base):
    __tablename__ = "racks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class DeviceModelRow(Base):
    __tablename__ = "device_models"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    manufacturer: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    rack_id: Mapped[str | None] = mapped_column(ForeignKey("racks.id"))
    model_name: Mapped[str] = mapped_column(ForeignKey("device_models.name"))
    kind: Mapped[str] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(32))
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)
    profile: Mapped[str | None] = mapped_column(String(64))
    power_w: Mapped[float] = mapped_column(Float, default=0.0)
    hashrate_ths: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime]
    maintenance: Mapped[str | None] = mapped_column(String(500))  # MAX_MAINTENANCE_REASON
    maintenance_since: Mapped[datetime | None]
    maintenance_by: Mapped[str | None] = mapped_column(String(200))
    problems: Mapped[list[str] | None] = mapped_column(JSON)  # None when there are none
    __table_args__ = (Index(None, "kind", "state"),)


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    gpu_quota: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SessionRow(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class WorkloadRow(Base):
    __tablename__ = "workloads"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    workload_class: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    gpu_type: Mapped[str | None] = mapped_column(String(32))
    gpu_count: Mapped[int] = mapped_column(Integer)
    memory_gb_per_gpu: Mapped[int | None] = mapped_column(Integer)
    estimated_hours: Mapped[float | None] = mapped_column(Float)
    deadline: Mapped[datetime | None]
    checkpointable: Mapped[bool] = mapped_column(Boolean, default=False)
    max_price_usd_per_gpu_hour: Mapped[Decimal | None]
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    gpu_ids: Mapped[list[str] | None] = mapped_column(JSON)
    started_at: Mapped[datetime | None]
    checkpoint_progress: Mapped[float] = mapped_column(Float, default=0.0)
    checkpointed_at: Mapped[datetime | None]
    interruptible: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        Index(None, "state", "priority", "submitted_at"),
        Index(None, "customer_id", "submitted_at"),
    )


class QueueCounterRow(Base):
    """Queued workloads per priority, kept in step by the repository in the same transaction,
    so queue depth and a new workload's position cost one indexed read, not a COUNT."""

    __tablename__ = "queue_counters"
    priority: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    queued: Mapped[int] = mapped_column(Integer, default=0)


class WorkloadEventRow(Base):
    __tablename__ = "workload_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    # The GPUs a START began the run on (null for other events, and for starts stored before
    # migration 0016 that were not running then).
    gpu_ids: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))


class PreemptionRow(Base):
    __tablename__ = "preemptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    lost_gpu_hours: Mapped[float] = mapped_column(Float)
    gpu_ids: Mapped[list[str]] = mapped_column(JSON)
    for_workload_id: Mapped[str | None] = mapped_column(String(64))


COMMAND_ID_LENGTH = 160


class DispatchCommandRow(Base):
    __tablename__ = "dispatch_commands"
    # `{device id}:{action}:{attempt}@{ISO instant}`: up to 64 + 1 + 7 + 1 + 6 + 1 + 32 = 112
    id: Mapped[str] = mapped_column(String(COMMAND_ID_LENGTH), primary_key=True)
    issued_at: Mapped[datetime] = mapped_column(index=True)
    site_id: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    confirm_by: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    outcome_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)


class DispatchStatusRow(Base):
    """Each site's last tick of miner dispatch (one row per site, replaced every tick)."""

    __tablename__ = "dispatch_status"
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime]
    commands: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    power_increase_w: Mapped[float] = mapped_column(Float)
    deferred: Mapped[list[str]] = mapped_column(JSON)
    shortfall: Mapped[dict[str, Any]] = mapped_column(JSON)
    unhealthy: Mapped[dict[str, Any]] = mapped_column(JSON)
    degraded: Mapped[dict[str, Any]] = mapped_column(JSON)


class DispatchMemoryRow(Base):
    """What a site's miner dispatcher remembers of each miner (its ledger), one row per miner,
    written as it changes and read back by the next process to lead the site. The commands
    (in flight, last confirmed, last failed) and the last reading while mining are JSON, their
    times ISO 8601 with the UTC offset; `trouble` is the latest spell's problems (None: none)."""

    __tablename__ = "dispatch_memory"
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    confirmed: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    failed: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    degraded_until: Mapped[datetime | None]
    last_mining: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    trouble: Mapped[str | None] = mapped_column(Text)
    trouble_last_seen: Mapped[datetime | None]
    trouble_trips: Mapped[int | None] = mapped_column(Integer)
    troubled: Mapped[bool] = mapped_column(Boolean)
    slept_at: Mapped[datetime | None]
    woken_at: Mapped[datetime | None]


class PlatformClockRow(Base):
    """Each site's platform time against the wall, as the process leading the site keeps it
    (API processes follow it)."""

    __tablename__ = "platform_clock"
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    wall_at: Mapped[datetime]
    platform_at: Mapped[datetime]
    speed: Mapped[float] = mapped_column(Float)


class MarketSnapshotRow(Base):
    __tablename__ = "market_snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(32))
    btc_usd: Mapped[float] = mapped_column(Float)
    difficulty: Mapped[float] = mapped_column(Float)
    fees_btc_per_day: Mapped[float] = mapped_column(Float)
    electricity_usd_per_mwh: Mapped[dict[str, Any]] = mapped_column(JSON)
    day_ahead_usd_per_mwh: Mapped[dict[str, Any]] = mapped_column(JSON)
    gpu_spot_usd_per_gpu_hour: Mapped[dict[str, Any]] = mapped_column(JSON)


class PlanRow(Base):
    __tablename__ = "plans"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    interval_start: Mapped[datetime]
    strategy: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    expected_profit_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime]
    __table_args__ = (Index(None, "site_id", "interval_start"),)


class AllocationRow(Base):
    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    device_model: Mapped[str] = mapped_column(String(64))
    use: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    power_kw: Mapped[float] = mapped_column(Float)


# Telemetry (see hcp.adapters.db.telemetry): times are integer epoch milliseconds, series are
# numbered once in a dictionary table, and the tables written per sample carry no foreign key
# (a key check per row would cost ingest speed; series rows are never deleted). On SQLite the
# keyed tables are WITHOUT ROWID: the primary key is the table, so one B-tree is kept per row.
_NO_ROWID = {"sqlite_with_rowid": False}


class TelemetrySeriesRow(Base):
    """One id per (device, metric): the samples and rollups refer to it."""

    __tablename__ = "telemetry_series"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("device_id", "metric"),)


class TelemetryInboxRow(Base):
    """Samples as written: no key and no index, so an insert only appends. Merged into
    `telemetry_samples` in bulk (sorted) and emptied; queries read both."""

    __tablename__ = "telemetry_inbox"
    series_id: Mapped[int] = mapped_column(Integer)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    # The ORM needs an identity; the table deliberately has no primary key.
    __mapper_args__ = {"primary_key": [series_id, at_ms]}  # noqa: RUF012


class TelemetrySampleRow(Base):
    """Raw samples, clustered by series then time: a range read is one index seek."""

    __tablename__ = "telemetry_samples"
    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(Float)
    __table_args__ = _NO_ROWID


class TelemetryRollupRow(Base):
    """Aggregates of one series over one bucket ('1m' or '1h', starting at `bucket_start_ms`)."""

    __tablename__ = "telemetry_rollups"
    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sample_count: Mapped[int] = mapped_column(Integer)
    value_sum: Mapped[float] = mapped_column(Float)
    value_min: Mapped[float] = mapped_column(Float)
    value_max: Mapped[float] = mapped_column(Float)
    value_last: Mapped[float] = mapped_column(Float)
    __table_args__ = _NO_ROWID


class TelemetryPendingRow(Base):
    """Buckets whose rollup must be (re)computed once closed: every minute a merge touched,
    every hour a recomputed minute lies in."""

    __tablename__ = "telemetry_pending"
    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)
    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    __table_args__ = _NO_ROWID


class TelemetryHorizonRow(Base):
    """Per resolution, the epoch ms before which retention has deleted the data."""

    __tablename__ = "telemetry_horizons"
    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)
    start_ms: Mapped[int] = mapped_column(BigInteger)


class UsageRecordRow(Base):
    __tablename__ = "usage_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    workload_class: Mapped[str] = mapped_column(String(32))
    gpu_type: Mapped[str] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    interval_start: Mapped[datetime]
    interval_end: Mapped[datetime]
    gpu_hours: Mapped[Decimal]
    energy_kwh: Mapped[Decimal]
    rt_price_usd_per_mwh: Mapped[Decimal | None]
    energy_source: Mapped[str] = mapped_column(String(16), default="telemetry")
    # The final invoice that bills the record (None: none yet). A final invoice marks those it
    # bills, so a record of its month stored after it is told apart: late usage, for the next.
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    __table_args__ = (
        UniqueConstraint("workload_id", "interval_start"),
        Index(None, "customer_id", "interval_start"),
    )


class PriceChangeRow(Base):
    """Every list price an admin set, from its instant on: what usage is priced by."""

    __tablename__ = "price_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_class: Mapped[str] = mapped_column(String(32))
    gpu_family: Mapped[str] = mapped_column(String(32))
    usd_per_gpu_hour: Mapped[Decimal]
    effective_at: Mapped[datetime] = mapped_column(index=True)


class InvoiceRow(Base):
    __tablename__ = "invoices"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    month: Mapped[str] = mapped_column(String(7))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    total: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("customer_id", "month"),)


class InvoiceLineRow(Base):
    __tablename__ = "invoice_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal]
    unit: Mapped[str] = mapped_column(String(32))
    unit_price: Mapped[Decimal]
    amount: Mapped[Decimal]
    # On a line billing late usage, the earlier month it ran in ("YYYY-MM").
    late_usage_month: Mapped[str | None] = mapped_column(String(7))
