"""A simulated GPU node: N GPUs of one model, the workloads they run, their power and their heat.

Time comes from an injected `Clock`, so tests fast-forward by moving the clock. Nothing runs in
the background: every reading or command first advances the node to `clock.now()` (workloads
that finished in between complete at their own finish time, temperatures integrate the lag).
The node is not thread-safe; the simulator serves it from one asyncio loop.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hcp.adapters.clock import SystemClock
from hcp.domain.devices import GpuModel
from hcp.domain.errors import Conflict, HcpError, InvalidTransition, NotFound, ValidationError
from hcp.domain.gpu_telemetry import APPLICATION_XIDS, AgentWorkloadState, GpuHealth
from hcp.services.ports import Clock

# Xids whose documented immediate action is "restart the application" (NVIDIA Xid catalog): the
# workload dies, the GPU stays usable. Any other Xid leaves the GPU unhealthy until reset.
XID_FALLEN_OFF_BUS = 79
DEFAULT_FAULT_XID = 48  # double-bit ECC error: the GPU needs a reset
MAX_DURATION_S = 10 * 365 * 86_400.0
"""The longest workload a node takes (ten years): its end must stay a datetime."""

_FULL_LOAD_RISE_C = 45.0  # die temperature above ambient at busy power, steady state
_THERMAL_TAU_S = 40.0  # time constant of the die's first-order thermal lag
_DEFAULT_FB_SHARE = 0.75  # share of the framebuffer a workload takes when it does not say
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # safe as one URL path segment

RUNNING = AgentWorkloadState.RUNNING


class NodeIsDown(HcpError):
    """The node is down: it answers nothing until it is brought back up."""

    def __init__(self, hostname: str) -> None:
        super().__init__(f"node {hostname} is down")
        self.hostname = hostname


class GpuNotAvailable(Conflict):
    """A requested GPU is busy, unhealthy or lost; `reason` says which."""

    def __init__(self, hostname: str, gpu_index: int, reason: str) -> None:
        super().__init__(f"{hostname} gpu {gpu_index} is {reason}")
        self.hostname = hostname
        self.gpu_index = gpu_index
        self.reason = reason


class DuplicateWorkload(Conflict):
    """A workload with this id was already started on this node."""

    def __init__(self, workload_id: str) -> None:
        super().__init__(f"workload {workload_id!r} already exists on this node")
        self.workload_id = workload_id


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU as its node reads it now: %, W, °C, MiB; None where a lost GPU cannot be read."""

    index: int
    uuid: str
    pci_bus_id: str
    health: GpuHealth
    workload_id: str | None
    util_pct: float | None
    power_w: float | None
    temp_c: float | None
    fb_used_mib: int | None
    fb_free_mib: int | None
    last_xid: int
    xid_count: int


@dataclass(frozen=True, slots=True)
class WorkloadView:
    """A workload as the node agent reports it; progress and checkpoint progress run 0–1."""

    workload_id: str
    state: AgentWorkloadState
    progress: float
    checkpoint_progress: float
    gpu_indices: tuple[int, ...]
    checkpointable: bool
    duration_s: float
    started_at: datetime
    ended_at: datetime | None
    failure_reason: str | None


@dataclass(slots=True)
class _Gpu:
    index: int
    uuid: str
    pci_bus_id: str
    temp_c: float
    health: GpuHealth = GpuHealth.HEALTHY
    workload_id: str | None = None
    fb_used_mib: int = 0
    last_xid: int = 0
    xid_count: int = 0


@dataclass(slots=True)
class _Workload:
    workload_id: str
    gpu_indices: tuple[int, ...]
    duration_s: float
    checkpointable: bool
    start_progress: float
    started_at: datetime
    fb_mib_per_gpu: int
    checkpoint_progress: float
    state: AgentWorkloadState = RUNNING
    ended_at: datetime | None = None
    end_progress: float = 0.0
    failure_reason: str | None = None

    def progress(self, now: datetime) -> float:
        """Share of the work done (0–1) at `now`; `duration_s` is the time from 0 to 1."""
        if self.state is not RUNNING:
            return self.end_progress
        done = (now - self.started_at).total_seconds() / self.duration_s
        return min(1.0, self.start_progress + max(0.0, done))

    def finishes_at(self) -> datetime:
        return self.started_at + timedelta(seconds=(1 - self.start_progress) * self.duration_s)

    def view(self, now: datetime) -> WorkloadView:
        return WorkloadView(
            workload_id=self.workload_id,
            state=self.state,
            progress=self.progress(now),
            checkpoint_progress=self.checkpoint_progress,
            gpu_indices=self.gpu_indices,
            checkpointable=self.checkpointable,
            duration_s=self.duration_s,
            started_at=self.started_at,
            ended_at=self.ended_at,
            failure_reason=self.failure_reason,
        )


class GpuNodeSim:
    """State and physics of one simulated GPU node with `gpu_count` GPUs of one `model`."""

    def __init__(
        self,
        hostname: str,
        model: GpuModel,
        gpu_count: int = 8,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        ambient_c: float = 25.0,
        driver_version: str = "550.90.07",
    ) -> None:
        _check_name("hostname", hostname)
        if gpu_count < 1:
            raise ValidationError("gpu_count", "a node needs at least one GPU")
        self.hostname = hostname
        self.model = model
        self.driver_version = driver_version
        self.ambient_c = ambient_c
        self.is_down = False
        self._clock: Clock = clock or SystemClock()
        self._rng = random.Random(f"{seed}:{hostname}")
        self._now = self._clock.now()
        idle_c = self._steady_temp_c(model.idle_power_w)
        self._gpus = [
            _Gpu(i, _gpu_uuid(hostname, i), _pci_bus_id(i), idle_c) for i in range(gpu_count)
        ]
        self._workloads: dict[str, _Workload] = {}

    @property
    def gpu_count(self) -> int:
        return len(self._gpus)

    @property
    def fb_total_mib(self) -> int:
        """Framebuffer of one GPU in MiB."""
        return self.model.memory_gb * 1024

    # -- readings ---------------------------------------------------------------------------

    def sample(self) -> list[GpuSample]:
        """Every GPU as read now, lost ones included (with None readings); NodeIsDown if down."""
        self._require_up()
        self._advance()
        return [self._sample(g) for g in self._gpus]

    def workload(self, workload_id: str) -> WorkloadView:
        """The workload's state and progress now; NotFound if this node never ran it."""
        self._require_up()
        return self._get(workload_id).view(self._advance())

    def workloads(self, workload_ids: Iterable[str]) -> list[WorkloadView]:
        """The named workloads this node knows, as `workload` reports each (unknown ones are
        left out: a poller asks for many at once)."""
        self._require_up()
        now = self._advance()
        return [self._workloads[w].view(now) for w in workload_ids if w in self._workloads]

    # -- commands ---------------------------------------------------------------------------

    def start(
        self,
        workload_id: str,
        gpu_indices: list[int] | tuple[int, ...],
        duration_s: float,
        *,
        checkpointable: bool = False,
        resume_from_progress: float = 0.0,
        fb_mib_per_gpu: int | None = None,
    ) -> WorkloadView:
        """Start a workload of `duration_s` seconds (from progress 0 to 1) on `gpu_indices`.

        ValidationError for bad arguments, DuplicateWorkload for a reused id, GpuNotAvailable when
        a GPU is busy, unhealthy or lost.
        """
        self._require_up()
        now = self._advance()
        indices = tuple(gpu_indices)
        _check_resume(resume_from_progress, checkpointable)
        self._check_start(workload_id, indices, duration_s, fb_mib_per_gpu)
        fb_mib = fb_mib_per_gpu or int(self.fb_total_mib * _DEFAULT_FB_SHARE)
        wl = _Workload(
            workload_id=workload_id,
            gpu_indices=indices,
            duration_s=duration_s,
            checkpointable=checkpointable,
            start_progress=resume_from_progress,
            started_at=now,
            fb_mib_per_gpu=fb_mib,
            checkpoint_progress=resume_from_progress,
        )
        self._workloads[workload_id] = wl
        for i in indices:
            self._gpus[i].workload_id = workload_id
            self._gpus[i].fb_used_mib = fb_mib
        return wl.view(now)

    def checkpoint(self, workload_id: str) -> WorkloadView:
        """Record the workload's current progress as its checkpoint (instantly)."""
        self._require_up()
        now = self._advance()
        wl = self._get(workload_id)
        if not wl.checkpointable:
            raise Conflict(f"workload {workload_id!r} is not checkpointable")
        if wl.state is not RUNNING:
            raise InvalidTransition(wl.state.value, "checkpoint", workload_id)
        wl.checkpoint_progress = wl.progress(now)
        return wl.view(now)

    def stop(self, workload_id: str) -> WorkloadView:
        """Stop a running workload and free its GPUs; a finished one is returned unchanged."""
        self._require_up()
        now = self._advance()
        wl = self._get(workload_id)
        if wl.state is RUNNING:
            self._end(wl, AgentWorkloadState.STOPPED, now)
        return wl.view(now)

    # -- faults (work while the node is down, so a test can stage what it finds on return) ----

    def inject_xid(self, gpu_index: int, xid: int = DEFAULT_FAULT_XID) -> None:
        """The GPU raises Xid `xid`: its workload fails; most Xids also leave it unhealthy."""
        if xid < 1:
            raise ValidationError("xid", "an Xid code is a positive integer")
        now = self._advance()
        gpu = self._present_gpu(gpu_index)
        gpu.last_xid, gpu.xid_count = xid, gpu.xid_count + 1
        if xid not in APPLICATION_XIDS:
            gpu.health = GpuHealth.UNHEALTHY
        self._fail_workload_on(gpu, now, f"xid {xid} on gpu {gpu_index}")

    def drop_off_bus(self, gpu_index: int) -> None:
        """The GPU falls off the PCIe bus (Xid 79): its workload fails, it leaves the metrics."""
        now = self._advance()
        gpu = self._present_gpu(gpu_index)
        gpu.health = GpuHealth.LOST
        gpu.last_xid, gpu.xid_count = XID_FALLEN_OFF_BUS, gpu.xid_count + 1
        self._fail_workload_on(gpu, now, f"gpu {gpu_index} fell off the bus (xid 79)")

    def reset_gpu(self, gpu_index: int) -> None:
        """Reset (or re-seat) the GPU: healthy again; a workload still on it fails."""
        now = self._advance()
        gpu = self._gpu(gpu_index)
        gpu.health = GpuHealth.HEALTHY
        self._fail_workload_on(gpu, now, f"gpu {gpu_index} was reset")

    def set_down(self, down: bool) -> None:
        """Take the node down (its running workloads fail) or bring it back up."""
        now = self._advance()
        if down:
            for wl in self._running():
                self._end(wl, AgentWorkloadState.FAILED, now, reason="node went down")
        self.is_down = down

    # -- internals --------------------------------------------------------------------------

    def _advance(self) -> datetime:
        """Move the node to `clock.now()`: complete due workloads, integrate temperatures."""
        now = self._clock.now()
        due = [wl for wl in self._running() if wl.finishes_at() <= now]
        for wl in sorted(due, key=_Workload.finishes_at):
            self._integrate_to(wl.finishes_at())
            self._end(wl, AgentWorkloadState.COMPLETED, wl.finishes_at())
        self._integrate_to(now)
        return now

    def _integrate_to(self, t: datetime) -> None:
        """First-order thermal lag toward each GPU's steady temperature from `self._now` to `t`."""
        dt_s = (t - self._now).total_seconds()
        if dt_s <= 0:
            return
        decay = math.exp(-dt_s / _THERMAL_TAU_S)
        for gpu in self._gpus:
            target_c = self._steady_temp_c(self._nominal_power_w(gpu))
            gpu.temp_c = target_c + (gpu.temp_c - target_c) * decay
        self._now = t

    def _nominal_power_w(self, gpu: _Gpu) -> float:
        return self.model.busy_power_w if gpu.workload_id else self.model.idle_power_w

    def _steady_temp_c(self, power_w: float) -> float:
        return self.ambient_c + _FULL_LOAD_RISE_C * power_w / self.model.busy_power_w

    def _sample(self, gpu: _Gpu) -> GpuSample:
        """Read one GPU's sensors: busy power a few % under busy_power_w, idle power ±3 %."""
        ident = (gpu.index, gpu.uuid, gpu.pci_bus_id, gpu.health, gpu.workload_id)
        if gpu.health is GpuHealth.LOST:
            return GpuSample(*ident, None, None, None, None, None, gpu.last_xid, gpu.xid_count)
        busy = gpu.workload_id is not None
        if busy:
            util = float(self._rng.randint(95, 100))
            power_w = self.model.busy_power_w * self._rng.uniform(0.94, 1.0)
        else:
            util, power_w = 0.0, self.model.idle_power_w * self._rng.uniform(0.97, 1.03)
        return GpuSample(
            *ident,
            util_pct=util,
            power_w=round(power_w, 3),
            temp_c=round(gpu.temp_c, 1),
            fb_used_mib=gpu.fb_used_mib,
            fb_free_mib=self.fb_total_mib - gpu.fb_used_mib,
            last_xid=gpu.last_xid,
            xid_count=gpu.xid_count,
        )

    def _check_start(
        self, workload_id: str, indices: tuple[int, ...], duration_s: float, fb_mib: int | None
    ) -> None:
        """Raise the first reason this start cannot go ahead (bad input before a conflict)."""
        _check_name("workload_id", workload_id)
        if not indices or len(set(indices)) != len(indices):
            raise ValidationError("gpu_indices", "give at least one GPU index, each once")
        for i in indices:
            self._gpu(i)
        if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_DURATION_S):
            raise ValidationError(
                "duration_s", f"must be a positive number of seconds, at most {MAX_DURATION_S:,.0f}"
            )
        if fb_mib is not None and not 0 < fb_mib <= self.fb_total_mib:
            raise ValidationError("fb_mib_per_gpu", f"must be 1..{self.fb_total_mib} MiB")
        if workload_id in self._workloads:
            raise DuplicateWorkload(workload_id)
        for i in indices:
            self._check_free(self._gpus[i])

    def _check_free(self, gpu: _Gpu) -> None:
        if gpu.health is not GpuHealth.HEALTHY:
            raise GpuNotAvailable(self.hostname, gpu.index, gpu.health.value)
        if gpu.workload_id is not None:
            raise GpuNotAvailable(self.hostname, gpu.index, f"busy with {gpu.workload_id!r}")

    def _end(
        self, wl: _Workload, state: AgentWorkloadState, at: datetime, reason: str | None = None
    ) -> None:
        """Move a running workload to a terminal `state` at `at` and free its GPUs."""
        wl.end_progress = 1.0 if state is AgentWorkloadState.COMPLETED else wl.progress(at)
        wl.state, wl.ended_at, wl.failure_reason = state, at, reason
        for i in wl.gpu_indices:
            self._gpus[i].workload_id = None
            self._gpus[i].fb_used_mib = 0

    def _fail_workload_on(self, gpu: _Gpu, now: datetime, reason: str) -> None:
        if gpu.workload_id is not None:
            self._end(self._workloads[gpu.workload_id], AgentWorkloadState.FAILED, now, reason)

    def _running(self) -> list[_Workload]:
        return [wl for wl in self._workloads.values() if wl.state is RUNNING]

    def _get(self, workload_id: str) -> _Workload:
        try:
            return self._workloads[workload_id]
        except KeyError:
            raise NotFound("workload", workload_id) from None

    def _gpu(self, index: int) -> _Gpu:
        if not 0 <= index < len(self._gpus):
            raise ValidationError("gpu_index", f"{index} is not in 0..{len(self._gpus) - 1}")
        return self._gpus[index]

    def _present_gpu(self, index: int) -> _Gpu:
        gpu = self._gpu(index)
        if gpu.health is GpuHealth.LOST:
            raise GpuNotAvailable(self.hostname, index, "lost")
        return gpu

    def _require_up(self) -> None:
        if self.is_down:
            raise NodeIsDown(self.hostname)


def _check_name(field: str, value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ValidationError(field, "1–128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")


def _check_resume(resume_from_progress: float, checkpointable: bool) -> None:
    if not 0.0 <= resume_from_progress < 1.0:
        raise ValidationError("resume_from_progress", "must be in [0, 1)")
    if resume_from_progress > 0 and not checkpointable:
        raise ValidationError("resume_from_progress", "only a checkpointable workload resumes")


def _gpu_uuid(hostname: str, index: int) -> str:
    """A stable UUID in NVML's `GPU-…` form, derived from the node and the index."""
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'gpu{index}.{hostname}.hcp-sim')}"


def _pci_bus_id(index: int) -> str:
    return f"00000000:{(0x18 + 0x10 * index) % 0x100:02X}:00.0"
