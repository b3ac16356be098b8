"""Device telemetry series: raw samples or rollups, bucketed to the step asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from hcp.domain.telemetry import Point
from hcp.http.deps import PlatformDep, StaffPrincipal
from hcp.services.telemetry import parse_step

router = APIRouter(prefix="/api/v1", tags=["telemetry"])


class TelemetryPointOut(BaseModel):
    at: datetime
    avg: float
    min: float
    max: float
    count: int


class TelemetryOut(BaseModel):
    device: str
    metric: str
    step_seconds: int
    resolution: str
    points: list[TelemetryPointOut]


@router.get("/telemetry", response_model=TelemetryOut)
def telemetry(
    platform: PlatformDep,
    _caller: StaffPrincipal,
    device: Annotated[str, Query(min_length=1, max_length=64)],
    metric: Annotated[str, Query(min_length=1, max_length=64, examples=["power_w"])],
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    step: Annotated[str, Query(max_length=16, examples=["60s", "5m", "1h"])] = "60s",
) -> TelemetryOut:
    """One metric of one device over [from, to) (default: the last hour), a point per step.

    `step` in seconds or with a unit (`90`, `60s`, `5m`, `1h`). Under a minute it reads raw
    samples, under an hour 1-minute rollups, else 1-hour rollups, rounded up to whole buckets
    (`step_seconds` says what was used); `from` is rounded down to a step boundary. Each point:
    the bucket's start, mean, min, max and sample count; buckets without data are left out.
    """
    series = platform.telemetry.series(device, metric, start, end, parse_step(step))
    return TelemetryOut(
        device=series.device_id,
        metric=series.metric,
        step_seconds=series.step_s,
        resolution=series.resolution.value,
        points=[_point_out(p) for p in series.points],
    )


def _point_out(p: Point) -> TelemetryPointOut:
    return TelemetryPointOut(at=p.at, avg=p.avg, min=p.min, max=p.max, count=p.count)
