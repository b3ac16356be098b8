"""Device telemetry series: raw samples or rollups, bucketed to the step asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from hcp.domain.telemetry import Point
from hcp.http.deps import PlatformDep, StaffPrincipal
from hcp.http.schemas import UtcDatetime
from hcp.services.telemetry import DeviceKinds, parse_step

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


def get_device_kinds(request: Request) -> DeviceKinds:
    """The app's cache of device kinds (`create_app` makes it)."""
    kinds: DeviceKinds = request.app.state.device_kinds
    return kinds


@router.get("/telemetry", response_model=TelemetryOut)
def telemetry(
    platform: PlatformDep,
    _caller: StaffPrincipal,
    kinds: Annotated[DeviceKinds, Depends(get_device_kinds)],
    device: Annotated[str, Query(min_length=1, max_length=64)],
    metric: Annotated[str, Query(min_length=1, max_length=64, examples=["power_w"])],
    start: Annotated[UtcDatetime | None, Query(alias="from")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to")] = None,
    step: Annotated[str, Query(max_length=16, examples=["60s", "5m", "1h"])] = "60s",
) -> TelemetryOut:
    """One metric of one device over [from, to) (default: the last hour), a point per step.

    Metrics: `reachable` and `healthy` (1 or 0), `power_w`, `temperature_c`, and for miners
    `hashrate_ths`, for GPUs `util_pct`. An unknown device answers 404; an unknown metric, or
    one the device's kind does not report, 422.

    `step` in seconds or with a unit (`90`, `60s`, `5m`, `1h`, `1d`). Under a minute it reads
    raw samples, under an hour 1-minute rollups, else 1-hour rollups, and only whole ones
    within [from, to); the step is rounded up to whole rollups (`step_seconds` says what was
    used). Points start at multiples of the step, except the first: a stretch shorter than a
    step between `from` and the first multiple is a point of its own. No point covers time
    outside [from, to): a step longer than the window (`999999999d` too) covers the window
    with one point, or two where a multiple of the step falls inside it.
    Each point: its start, mean, min, max and sample count; points without data are left out.
    At most 10,000 points.
    """
    series = platform.telemetry.series(
        device, metric, start, end, parse_step(step), kind_of=kinds.kind_of
    )
    return TelemetryOut(
        device=series.device_id,
        metric=series.metric,
        step_seconds=series.step_s,
        resolution=series.resolution.value,
        points=[_point_out(p) for p in series.points],
    )


def _point_out(p: Point) -> TelemetryPointOut:
    return TelemetryPointOut(at=p.at, avg=p.avg, min=p.min, max=p.max, count=p.count)
