"""Request and response bodies of the public API (seed-compatible shapes)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from hcp.domain.fleet import MAX_MAINTENANCE_REASON
from hcp.domain.identity import Role
from hcp.domain.workloads import WorkloadClass, WorkloadState

MAX_GPUS_PER_REQUEST = 100_000


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC; one a UTC calendar cannot hold (years 1 and 9999 at the edges,
    with an offset) is refused rather than overflowing later."""
    if not 2 <= value.year <= 9998:
        raise ValueError("must be between the years 2 and 9998")
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A time with its zone, given back in UTC."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequirementsIn(Strict):
    gpu_type: str | None = Field(
        None, max_length=32, description="GPU family, e.g. H100; omit for any"
    )
    gpu_count: int = Field(1, ge=1, le=MAX_GPUS_PER_REQUEST)
    memory_gb: int | None = Field(None, ge=1, le=4096, description="memory per GPU, GB")
    estimated_duration_hours: float | None = Field(None, gt=0, le=8760)

    @field_validator("gpu_type")
    @classmethod
    def _any_is_none(cls, value: str | None) -> str | None:
        return None if value is None or value.lower() == "any" else value


class WorkloadIn(Strict):
    customer_id: str | None = Field(None, min_length=1, max_length=64)
    workload_type: WorkloadClass
    priority: int | None = Field(None, ge=1, le=3, description="follows the class; may be omitted")
    requirements: RequirementsIn = Field(default_factory=lambda: RequirementsIn())
    deadline: UtcDatetime | None = None
    checkpointable: bool = False
    max_price_usd_per_gpu_hour: Decimal | None = Field(None, ge=0, le=10_000, decimal_places=6)
    tier: Literal["standard", "interruptible"] = Field(
        "standard",
        description="interruptible: a discount priced off the real-time electricity price",
    )


class WorkloadCreated(BaseModel):
    workload_id: str
    status: WorkloadState
    priority: int
    queue_position: int
    customer_id: str
    workload_type: WorkloadClass
    submitted_at: datetime


class RequirementsOut(BaseModel):
    gpu_type: str | None
    gpu_count: int
    memory_gb: int | None
    estimated_duration_hours: float | None


class WorkloadOut(BaseModel):
    workload_id: str
    customer_id: str
    workload_type: WorkloadClass
    priority: int
    status: WorkloadState
    requirements: RequirementsOut
    submitted_at: datetime
    updated_at: datetime
    deadline: datetime | None
    checkpointable: bool
    max_price_usd_per_gpu_hour: Decimal | None
    site_id: str | None
    progress: float
    checkpoint_progress: float = Field(
        description="Progress (0–1) of the last checkpoint known: where the run resumes if its "
        "nodes are lost"
    )
    checkpointed_at: datetime | None = Field(description="When that checkpoint was seen")
    retries: int
    tier: str


class StateChangeOut(BaseModel):
    at: datetime
    event: str
    from_state: WorkloadState | None
    to_state: WorkloadState
    reason: str | None


class WorkloadDetail(WorkloadOut):
    history: list[StateChangeOut]


class WorkloadList(BaseModel):
    workloads: list[WorkloadOut]
    total: int
    limit: int
    offset: int


class PriceValue(BaseModel):
    value: float
    unit: str


class PricesOut(BaseModel):
    timestamp: datetime
    node: str
    prices: dict[str, PriceValue]


class ProfitabilityIn(Strict):
    resource_type: Literal["GPU", "ASIC"]
    workload_type: WorkloadClass | None = None
    power_draw_w: float | None = Field(None, gt=0, le=100_000)
    gpu_type: str = Field("H100", max_length=32)
    asic_model: str = Field("S21", max_length=64)
    profile: str = Field("stock", max_length=64)
    hashrate_ths: float | None = Field(None, gt=0, le=10_000)
    duration_hours: float = Field(1.0, gt=0, le=8760)


class ProfitabilityOut(BaseModel):
    score: float
    expected_revenue: float
    estimated_cost: float
    net_profit: float
    recommendation: str
    breakeven_usd_per_mwh: float
    electricity_usd_per_mwh: float
    timestamp: datetime


class QueueDepthOut(BaseModel):
    total_depth: int
    by_priority: dict[str, int]
    utilization_pct: float


class DeviceOut(BaseModel):
    device_id: str
    kind: str
    model: str
    site_id: str
    rack_id: str | None
    address: str | None
    state: str
    healthy: bool
    profile: str | None
    power_w: float
    hashrate_ths: float
    updated_at: datetime
    problems: list[str] = Field(
        description="What was wrong at `updated_at`, in words (e.g. `unreachable: cannot "
        "connect (...)`, `board 2 dead`, `overheating: 97 °C >= 90 °C`, `XID 48`); empty when "
        "healthy. An API server that does not poll the fleet itself (`hcp api`) knows only "
        "`unreachable` or `unhealthy`.",
        examples=[["board 2 dead"]],
    )
    maintenance: MaintenanceOut | None = Field(
        None,
        description="Set while the device is in maintenance: a miner gets no command, a GPU "
        "no new workload (the one it runs drains), and the plan counts on neither.",
    )


class MaintenanceIn(Strict):
    reason: str = Field(
        ...,
        min_length=1,
        max_length=MAX_MAINTENANCE_REASON,
        description="Why the device is left alone (shown in the API and the dispatch log).",
        examples=["fan 2 replaced, burn-in tomorrow"],
    )


class MaintenanceOut(BaseModel):
    reason: str
    since: datetime
    by: str = Field(description="The user or API key that put the device in maintenance.")


class ResourcesOut(BaseModel):
    resources: list[DeviceOut]
    total: int
    by_kind: dict[str, int]
    by_state: dict[str, int]


class SiteOut(BaseModel):
    site_id: str
    name: str
    node: str
    capacity_mw: float
    pue: float
    contract: dict[str, object]


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    error: str
    message: str
    fields: list[ErrorField] = []


class KeyIn(Strict):
    name: str = Field(..., min_length=1, max_length=200)
    role: Role = Role.CUSTOMER
    customer_id: str | None = Field(None, min_length=1, max_length=64)
    expires_at: UtcDatetime | None = None


class KeyOut(BaseModel):
    key_id: str
    name: str
    prefix: str
    role: Role
    customer_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    secret: str = Field(..., description="shown once; only its hash is stored")


class UserIn(Strict):
    email: str = Field(..., min_length=3, max_length=320)
    name: str = Field("", max_length=200)
    role: Role
    customer_id: str | None = Field(None, min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=1024)


class UserPatch(Strict):
    disabled: bool | None = None
    password: str | None = Field(None, min_length=1, max_length=1024)


class UserOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: Role
    customer_id: str | None
    created_at: datetime
    disabled: bool


class CustomerIn(Strict):
    customer_id: str = Field(..., min_length=1, max_length=64)
    name: str = Field("", max_length=200)
    weight: float = Field(
        1.0,
        gt=0,
        le=1_000,
        allow_inf_nan=False,
        description="fair-share weight: the customer's share of contended GPUs against others'",
    )
    gpu_quota: int | None = Field(
        None, ge=1, le=1_000_000, description="most GPUs it may hold at once (null: no quota)"
    )


class CustomerPatch(Strict):
    """What to change; a field left out stays. `gpu_quota: null` lifts the quota."""

    name: str | None = Field(None, max_length=200)
    weight: float | None = Field(None, gt=0, le=1_000, allow_inf_nan=False)
    gpu_quota: int | None = Field(None, ge=1, le=1_000_000)


class CustomerOut(BaseModel):
    customer_id: str
    name: str
    created_at: datetime
    weight: float
    gpu_quota: int | None
