"""The scheduling tick on stored state: follow running work, then place, preempt and requeue
as `hcp.scheduling.schedule` decides, and carry it out on the GPU nodes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from hcp.domain.catalog import gpu_model
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import HcpError, StateChanged
from hcp.domain.fleet import Device
from hcp.domain.identity import Customer
from hcp.domain.workloads import (
    PreemptionRecord,
    StateChange,
    Workload,
    WorkloadEvent,
    WorkloadState,
    transition,
)
from hcp.scheduling import (
    Gpu,
    Placement,
    Preemption,
    PreemptionAction,
    RunningWorkload,
    SchedulingDecision,
    SchedulingPolicy,
    WorkloadQueue,
    WorkloadSpec,
    lost_gpu_hours,
    schedule,
)
from hcp.services.ports import Clock, GpuCommandLog, StoredCommand, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)
DEFAULT_HOURS = 1.0
ACTIVE = (WorkloadState.SCHEDULED, WorkloadState.RUNNING)


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A workload as its GPU node reports it; progress and checkpoint run from 0 to 1."""

    state: RunState
    progress: float
    checkpoint: float = 0.0
    detail: str | None = None
    ended_at: datetime | None = None


class GpuRunner(Protocol):
    """Starts, stops and follows workloads on GPU nodes."""

    async def start(self, workload: Workload, gpus: Sequence[Device]) -> None: ...
    async def checkpoint(self, workload: Workload, gpus: Sequence[Device]) -> float:
        """Checkpoint a running workload where it runs: the progress the checkpoint keeps."""
        ...

    async def stop(
        self, workload: Workload, gpus: Sequence[Device], checkpoint: bool
    ) -> float | None:
        """Stop it; the progress a resumed run would start from, or None when a node no
        longer knows the run (nothing kept there: the last checkpoint known stands)."""
        ...

    async def poll(
        self, running: Sequence[tuple[Workload, Sequence[Device]]]
    ) -> dict[str, RunStatus]: ...


@dataclass
class TickReport:
    """What one scheduling tick did."""

    started: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    preempted: list[Preemption] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    on_nodes: list[str] = field(default_factory=list)
    """Workloads their nodes were asked about and answered still running, or finished (with
    the instant): the nodes vouch for their time (see `ControlLoop.resume_metering`)."""
    unanswered: set[str] = field(default_factory=set)
    """Workloads whose nodes did not answer this tick's follow (their status is unknown)."""
    failed_on: set[str] = field(default_factory=set)
    """GPUs a run failed on, as its node reported this tick (kept out of this tick's
    placements)."""
    power_added_w: dict[str, float] = field(default_factory=dict)
    """Per site: what the GPUs this tick started add to the draw (busy over idle, W at the
    devices), less what the GPUs it stopped (preempted or cancelled) give back. Work that
    ended on its own is not counted: no order of this tick's changed that draw. The
    dispatcher keeps the miners' rise within what is left of the site's ramp."""

    def add_power(self, devices: Sequence[Device], sign: float) -> None:
        """Count `devices` (GPUs) going busy (`sign` 1) or idle (-1) in this tick."""
        for d in devices:
            model = gpu_model(d.model_name)
            rise = sign * (model.busy_power_w - model.idle_power_w)
            self.power_added_w[d.site_id] = self.power_added_w.get(d.site_id, 0.0) + rise


def spec_of(w: Workload) -> WorkloadSpec:
    """The scheduler's view of a stored workload."""
    req = w.requirements
    price = w.max_price_usd_per_gpu_hour
    return WorkloadSpec(
        id=w.id,
        customer_id=w.customer_id,
        workload_class=w.workload_class,
        gpu_family=req.gpu_type,
        gpu_count=req.gpu_count,
        memory_gb_per_gpu=float(req.memory_gb_per_gpu or 0),
        estimated_hours=req.estimated_hours or DEFAULT_HOURS,
        submitted_at=w.submitted_at,
        deadline=w.deadline,
        checkpointable=w.checkpointable,
        max_price_usd_per_gpu_hour=None if price is None else float(price),
        retries=w.retries,
        interruptible=w.interruptible,
    )


def gpu_of(d: Device) -> Gpu:
    """The scheduler's view of a GPU device; its rack is its node. One in maintenance is
    cordoned: no new workload, the one it runs drains."""
    model = gpu_model(d.model_name)
    node = d.rack_id or d.site_id
    return Gpu(d.id, node, d.site_id, model.family, model.memory_gb, d.healthy, d.in_maintenance)


class SchedulerService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        runner: GpuRunner,
        clock: Clock,
        policy: SchedulingPolicy | None = None,
        on_change: Callable[[StateChange], None] = lambda change: None,
        commands: GpuCommandLog | None = None,
    ) -> None:
        self._uow = uow
        self._runner = runner
        self._clock = clock
        self._policy = policy or SchedulingPolicy()
        self._on_change = on_change
        self._commands = commands
        self._sent: list[StoredCommand] = []
        self._open: UnitOfWork | None = None
        self._announce: list[StateChange] = []
        self._busy = asyncio.Lock()  # a follow between ticks never interleaves with a tick
        self.followed_at: datetime | None = None
        """When running work was last followed (platform time)."""

    async def follow(self) -> TickReport:
        """Ask the nodes how running work goes and store it: progress, completions, failures
        (requeued). The part of a tick that the fleet poll can do between ticks."""
        async with self._busy:
            report = TickReport()
            now = self._clock.now()
            with self._uow() as uow:
                gpus = {d.id: d for d in uow.fleet.devices(kind=DeviceKind.GPU)}
                active = uow.workloads.in_states(ACTIVE)
            await self._follow(active, gpus, now, report)
            self.followed_at = now
            await self._checkpoint_due(gpus, now, report)
            return report

    async def tick(self, budgets: Mapping[str, int], follow: bool = True) -> TickReport:
        """One tick: follow running work (unless `follow` is False: a poll just did), then
        schedule within `budgets` (GPUs per site).

        Node calls of one kind go out together; each phase's state changes are written in one
        transaction, and a workload is marked scheduled before any node is asked to run it.
        """
        async with self._busy:
            try:
                return await self._tick(budgets, follow)
            finally:
                await self._log_sent()

    async def _log_sent(self) -> None:
        """Store the tick's node commands in the command log. A write that fails is logged and
        the commands kept for the next tick's write: the tick itself has happened."""
        if self._commands is None or not self._sent:
            self._sent.clear()
            return
        sent = list(self._sent)
        try:
            await asyncio.to_thread(self._commands.add, sent)
        except Exception:
            log.exception("storing %d GPU node commands failed; trying again next tick", len(sent))
            return
        del self._sent[: len(sent)]

    async def _tick(self, budgets: Mapping[str, int], follow: bool) -> TickReport:
        report = TickReport()
        now = self._clock.now()
        with self._uow() as uow:
            gpus = {d.id: d for d in uow.fleet.devices(kind=DeviceKind.GPU)}
            active = uow.workloads.in_states(ACTIVE)
            ended = uow.workloads.holding_gpus([WorkloadState.CANCELLED])
        await self._release(ended, gpus, report)
        if follow:
            await self._follow(active, gpus, now, report)
            self.followed_at = now
            await self._checkpoint_due(gpus, now, report)
        gpus = self._without_failed(gpus, report)
        queued, active, decision = self._decide(gpus, budgets, now)
        checked: set[str] = set()
        while not follow:
            # The last poll's word is too old to stop work on: a victim may have finished
            # since. Ask its node, then decide again (until every victim has been asked).
            victims = {p.workload_id for p in decision.preemptions} - checked
            if not victims:
                break
            checked |= victims
            await self._follow([w for w in active if w.id in victims], gpus, now, report)
            gpus = self._without_failed(gpus, report)
            queued, active, decision = self._decide(gpus, budgets, now)
        by_id = {w.id: w for w in (*queued, *active)}
        await self._preempt_all(
            [(by_id[p.workload_id], p) for p in decision.preemptions], gpus, now, report
        )
        with self._writing():
            for spec in decision.requeues:
                self._back_to_queue(spec, now, report)
            for workload_id in decision.failed:
                if self._get(workload_id).state is not WorkloadState.FAILED:
                    self._fail(by_id[workload_id], "GPU failed; retry limit reached", now, report)
        await self._start_all(
            [(by_id[p.workload_id], p) for p in decision.placements], gpus, now, report
        )
        return report

    @staticmethod
    def _without_failed(gpus: Mapping[str, Device], report: TickReport) -> dict[str, Device]:
        """The GPUs, those a run just failed on counted unhealthy for the rest of the tick:
        the fleet poll that would say so may not have run yet, and a workload put back on
        them would fail again (the next tick goes by the stored health)."""
        return {
            i: replace(d, healthy=False) if i in report.failed_on else d for i, d in gpus.items()
        }

    def _decide(
        self, gpus: Mapping[str, Device], budgets: Mapping[str, int], now: datetime
    ) -> tuple[list[Workload], list[Workload], SchedulingDecision]:
        """The queued and active workloads as stored now, and what to do with them.

        A workload cancelled since this tick's `_release` still runs on its GPUs until the
        next tick stops it: they take no new work (cordoned), and since they draw power
        meanwhile, they come off their site's GPU budget."""
        with self._uow() as uow:
            queued = uow.workloads.in_states([WorkloadState.QUEUED])
            active = uow.workloads.in_states(ACTIVE)
            cancelled = uow.workloads.holding_gpus([WorkloadState.CANCELLED])
            policy = self._policy_for(uow.customers.all())
        unreleased = {g for w in cancelled for g in w.gpu_ids}
        drawing = Counter(gpus[g].site_id for g in unreleased if g in gpus)
        room = {site: max(0, n - drawing[site]) for site, n in budgets.items()}
        decision = schedule(
            WorkloadQueue([spec_of(w) for w in queued]),
            [
                replace(gpu_of(d), cordoned=True) if d.id in unreleased else gpu_of(d)
                for d in gpus.values()
            ],
            [_running(w) for w in active if w.gpu_ids],
            room,
            now,
            policy,
        )
        return queued, active, decision

    def _policy_for(self, customers: Sequence[Customer]) -> SchedulingPolicy:
        """The policy with each customer's fair-share weight and GPU quota as stored."""
        return replace(
            self._policy,
            customer_weights={c.id: c.weight for c in customers if c.weight != 1.0},
            gpu_quotas={c.id: c.gpu_quota for c in customers if c.gpu_quota is not None},
        )

    async def _release(
        self, ended: list[Workload], gpus: Mapping[str, Device], report: TickReport
    ) -> None:
        """Stop what ended while it held GPUs (a cancel through the API) and free those GPUs,
        before anything else may be placed on them."""
        holding = [w for w in ended if w.gpu_ids]
        await asyncio.gather(
            *(
                self._stop_ended(w, [gpus[g] for g in w.gpu_ids if g in gpus], report)
                for w in holding
            )
        )
        with self._writing():
            for w in holding:
                self._writer().workloads.release_gpus(w.id)

    async def _stop_ended(self, w: Workload, devices: list[Device], report: TickReport) -> None:
        # A node that fails the stop is gone: its GPUs are free either way.
        await self._stop_on_nodes(w, devices, report, "stop", "cancelled", checkpoint=False)

    async def _follow(
        self, active: list[Workload], gpus: Mapping[str, Device], now: datetime, report: TickReport
    ) -> None:
        held = [(w, [gpus[g] for g in w.gpu_ids if g in gpus]) for w in active if w.gpu_ids]
        statuses = await self._runner.poll(held)
        progress: dict[str, float] = {}
        checkpoints: dict[str, tuple[float, datetime]] = {}
        with self._writing():
            for w, _ in held:
                status = statuses.get(w.id)
                if status is None or status.state is RunState.UNKNOWN:
                    report.unanswered.add(w.id)
                    continue
                self._follow_one(w, status, now, report, progress)
                if status.state is RunState.RUNNING and status.checkpoint > w.checkpoint:
                    checkpoints[w.id] = (status.checkpoint, self._taken_by(w))
            self._writer().workloads.save_progress(progress)
            self._writer().workloads.save_checkpoints(checkpoints)

    def _taken_by(self, w: Workload) -> datetime:
        """The earliest a checkpoint first seen now may have been taken: after the run's start
        and after the last follow (which did not see it). The earliest, so that the work lost
        since it is never understated."""
        started = w.started_at or w.updated_at
        last = self.followed_at
        return started if last is None else max(started, last)

    def _follow_one(
        self,
        w: Workload,
        status: RunStatus,
        now: datetime,
        report: TickReport,
        progress: dict[str, float],
    ) -> None:
        """Act on one workload's status; a running one's progress goes into `progress`."""
        if w.state is WorkloadState.SCHEDULED and status.state in _STARTED:
            # Its nodes run it, but the tick that started it ended before storing that (it
            # was cancelled: shutdown, leadership lost): it is running since it was placed.
            w = self._apply(w, WorkloadEvent.START, now, "running (as its nodes report)")
            if w.state is not WorkloadState.RUNNING:
                return  # cancelled meanwhile
        if status.state is RunState.COMPLETED:
            # The node knows when it finished; billing must not run on to this tick.
            ended = min(status.ended_at or now, now)
            if w.started_at is not None and ended <= w.started_at:
                # The node's clock runs behind ours: its instant cannot be placed in our run
                # (billing would drop the whole run), so the run ends when it was seen ended.
                ended = now
            self._apply(w, WorkloadEvent.COMPLETE, ended, "finished", progress=1.0, gpu_ids=())
            report.completed.append(w.id)
            report.on_nodes.append(w.id)
        elif status.state in (RunState.FAILED, RunState.STOPPED):
            failed = status.state is RunState.FAILED
            if failed:
                report.failed_on.update(w.gpu_ids)
            reason = f"GPU node reports {status.state.value}: {status.detail or 'no detail'}"
            # A node that no longer knows the run reports no checkpoint: the last one known.
            kept = max(status.checkpoint, w.checkpoint) if w.checkpointable else 0.0
            # A run that failed counts against the retry limit; one its node stopped or forgot
            # (an agent restart, a platform whose simulated nodes died with it) is a
            # disruption, not the workload's failure, and counts nothing.
            retries = w.retries + 1 if failed else w.retries
            self._requeue(w, reason, now, report, retries=retries, progress=kept)
        else:
            report.on_nodes.append(w.id)
            if status.progress != w.progress:
                progress[w.id] = status.progress

    async def _checkpoint_due(
        self, gpus: Mapping[str, Device], now: datetime, report: TickReport
    ) -> None:
        """Checkpoint the runs `policy.checkpoint_every` past their last checkpoint (or their
        start) whose nodes answered the follow, and store the checkpoints their nodes took. A
        node that fails is only noted: the run goes on and is asked again at the next
        follow."""
        every = self._policy.checkpoint_every
        if every is None:
            return
        with self._uow() as uow:
            running = uow.workloads.in_states([WorkloadState.RUNNING])
        due = [
            (w, [gpus[g] for g in w.gpu_ids if g in gpus])
            for w in running
            if w.checkpointable
            and w.gpu_ids
            and w.id not in report.unanswered  # its nodes did not answer the follow just now
            and _last_checkpoint(w) + every <= now
        ]
        if not due:
            return
        issued = self._clock.now()
        outcomes = await asyncio.gather(
            *(self._runner.checkpoint(w, devices) for w, devices in due), return_exceptions=True
        )
        checkpoints: dict[str, tuple[float, datetime]] = {}
        for (w, devices), outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, HcpError):
                report.errors.append(f"checkpoint {w.id}: {outcome}")
                self._sent_to_nodes("checkpoint", w, devices, "checkpoint due", issued, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self._sent_to_nodes("checkpoint", w, devices, "checkpoint due", issued)
                checkpoints[w.id] = (outcome, now)
        with self._writing():
            self._writer().workloads.save_checkpoints(checkpoints)

    async def _preempt_all(
        self,
        victims: list[tuple[Workload, Preemption]],
        gpus: Mapping[str, Device],
        now: datetime,
        report: TickReport,
    ) -> None:
        resumes = await asyncio.gather(*(self._stop(w, p, gpus, report) for w, p in victims))
        with self._writing():
            for (w, p), resume in zip(victims, resumes, strict=True):
                self._record_preemption(w, p, resume, now, report)

    async def _stop(
        self, w: Workload, p: Preemption, gpus: Mapping[str, Device], report: TickReport
    ) -> float | None:
        """Stop `w` on its nodes, checkpointing it first when `p` keeps its work: the
        progress it resumes from, or None when a node failed the stop."""
        devices = [gpus[g] for g in w.gpu_ids if g in gpus]
        keep = _keeps_work(p) and w.checkpointable
        action = "checkpoint+stop" if keep else "stop"
        reason = _preemption_reason(p)
        if p.for_workload_id is not None:
            reason = f"{reason} for {p.for_workload_id}"
        return await self._stop_on_nodes(
            w, devices, report, action, reason, checkpoint=_keeps_work(p)
        )

    async def _stop_on_nodes(
        self,
        w: Workload,
        devices: Sequence[Device],
        report: TickReport,
        action: str,
        reason: str,
        *,
        checkpoint: bool,
    ) -> float | None:
        """Ask `w`'s nodes to stop it (checkpointing first when asked) and note the command as
        they answered: the progress to resume from, or None when nothing was kept on them: a
        node failed the stop (the error is in the report, and the GPUs count as still
        drawing) or no longer knew the run."""
        issued = self._clock.now()
        try:
            resume = await self._runner.stop(w, devices, checkpoint=checkpoint)
        except HcpError as exc:
            report.errors.append(f"stop {w.id}: {exc}")
            self._sent_to_nodes(action, w, devices, reason, issued, exc)
            return None
        self._sent_to_nodes(action, w, devices, reason, issued)
        report.add_power(devices, -1.0)
        return resume

    def _sent_to_nodes(
        self,
        action: str,
        w: Workload,
        devices: Sequence[Device],
        reason: str,
        issued: datetime,
        error: BaseException | None = None,
    ) -> None:
        """Note one command per GPU node for the command log (`/api/v1/dispatch`), judged by
        the node agents' answer: the call returned (confirmed) or raised (failed). A call
        spans the workload's nodes, so a failure on one marks all of them failed, each
        naming the node that failed in its detail."""
        indices: dict[str, list[str]] = {}
        for d in devices:
            indices.setdefault(d.rack_id or d.site_id, []).append(
                (d.address or "").rpartition("/")[2]
            )
        answered = self._clock.now()
        for node, gpus in indices.items():
            what = f"{w.id} ({w.workload_class.value}, GPUs {','.join(gpus)})"
            self._sent.append(
                StoredCommand(
                    id=f"gpu-{uuid.uuid4().hex}",
                    issued_at=issued,
                    device_id=node,
                    address=node,
                    action=action,
                    profile=None,
                    reason=f"{what}: {reason}",
                    attempt=1,
                    confirm_by=None,
                    status="confirmed" if error is None else "failed",
                    outcome_at=answered,
                    detail=_answer(error),
                )
            )

    def _record_preemption(
        self, w: Workload, p: Preemption, resume: float | None, now: datetime, report: TickReport
    ) -> None:
        # Checkpointed on its nodes as it stopped: it resumes where it was, nothing is lost.
        saved = _keeps_work(p) and w.checkpointable and resume is not None
        record = PreemptionRecord(
            now,
            w.id,
            p.reason.value,
            p.action.value,
            0.0 if saved else p.lost_gpu_hours,
            p.gpu_ids,
            p.for_workload_id,
        )
        self._writer().workloads.add_preemption(record)
        reason = _preemption_reason(p)
        if p.action is PreemptionAction.FAIL:
            self._fail(w, reason, now, report)
        else:
            self._apply(
                w, WorkloadEvent.PREEMPT, now, reason, gpu_ids=(), **_resume(w, p, resume, now)
            )
        report.preempted.append(p)

    def _back_to_queue(self, spec: WorkloadSpec, now: datetime, report: TickReport) -> None:
        """A stopped workload rejoins the queue (it keeps its submission time and place)."""
        w = self._get(spec.id)
        if w.state is WorkloadState.PREEMPTED:
            self._apply(w, WorkloadEvent.REQUEUE, now, "back to the queue", retries=spec.retries)
            report.requeued.append(spec.id)

    async def _start_all(
        self,
        placed: list[tuple[Workload, Placement]],
        gpus: Mapping[str, Device],
        now: datetime,
        report: TickReport,
    ) -> None:
        with self._writing():
            applied = [
                (
                    self._apply(
                        w,
                        WorkloadEvent.SCHEDULE,
                        now,
                        f"placed on {', '.join(p.nodes)}",
                        gpu_ids=p.gpu_ids,
                        site_id=p.site,
                        started_at=now,
                    ),
                    p,
                )
                for w, p in placed
            ]
        # One cancelled since the decision is not started.
        scheduled = [(w, p) for w, p in applied if w.state is WorkloadState.SCHEDULED]
        starts = [self._runner.start(w, [gpus[g] for g in w.gpu_ids]) for w, _ in scheduled]
        outcomes = await asyncio.gather(*starts, return_exceptions=True)
        unstarted: list[tuple[Workload, list[Device]]] = []
        with self._writing():
            for (w, p), outcome in zip(scheduled, outcomes, strict=True):
                error = outcome if isinstance(outcome, BaseException) else None
                placement = f"placed on {', '.join(p.nodes)}"
                devices = [gpus[g] for g in w.gpu_ids]
                self._sent_to_nodes("start", w, devices, placement, now, error)
                self._started(w, outcome, now, report)
                if error is None:
                    report.add_power(devices, 1.0)
                else:
                    unstarted.append((w, devices))
        # A start that failed on one node (or timed out) may have begun on others: stopped,
        # so the GPUs freed for the retry run nothing else.
        await asyncio.gather(
            *(
                self._stop_on_nodes(w, d, report, "stop", "could not start", checkpoint=False)
                for w, d in unstarted
            )
        )

    def _started(self, w: Workload, outcome: object, now: datetime, report: TickReport) -> None:
        if isinstance(outcome, HcpError):
            # A node that did not answer, or refused: tried again like any node failure,
            # up to the retry limit.
            report.errors.append(f"start {w.id}: {outcome}")
            self._requeue(w, f"could not start: {outcome}", now, report, retries=w.retries + 1)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            self._apply(w, WorkloadEvent.START, now, "running")
            report.started.append(w.id)

    def _requeue(
        self,
        w: Workload,
        reason: str,
        now: datetime,
        report: TickReport,
        *,
        retries: int,
        progress: float | None = None,
    ) -> None:
        action = "fail" if retries > self._policy.max_retries else "requeue"
        # A start that failed (no `progress`) ran nothing; a run that failed loses what it did
        # since the checkpoint it resumes from.
        lost = 0.0 if progress is None else _lost_to_failure(w, progress, now)
        record = PreemptionRecord(now, w.id, "gpu_failure", action, lost, w.gpu_ids)
        self._writer().workloads.add_preemption(record)
        if action == "fail":
            self._fail(w, f"{reason}; retry limit reached", now, report)
            return
        kept = w.progress if progress is None else progress
        seen = {} if kept == w.checkpoint else {"checkpointed_at": now}
        preempted = self._apply(
            w,
            WorkloadEvent.PREEMPT,
            now,
            reason,
            gpu_ids=(),
            retries=retries,
            progress=kept,
            checkpoint=kept,
            **seen,
        )
        self._apply(preempted, WorkloadEvent.REQUEUE, now, reason)
        report.requeued.append(w.id)

    def _fail(self, w: Workload, reason: str, now: datetime, report: TickReport) -> None:
        self._apply(w, WorkloadEvent.FAIL, now, reason, gpu_ids=())
        report.failed.append(w.id)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction for every change made inside; announced once it has committed."""
        with self._uow() as uow:
            self._open, self._announce = uow, []
            try:
                yield
                uow.commit()
            finally:
                self._open, announce = None, self._announce
        for change in announce:
            self._on_change(change)

    def _writer(self) -> UnitOfWork:
        if self._open is None:
            raise RuntimeError("state changes are written inside _writing()")
        return self._open

    def _apply(
        self, w: Workload, event: WorkloadEvent, now: datetime, reason: str, **changes: object
    ) -> Workload:
        """Store one lifecycle transition of `w` (with column changes) in the open transaction."""
        uow = self._writer()
        current = uow.workloads.get(w.id) or w
        if current.state is WorkloadState.CANCELLED and event is not WorkloadEvent.CANCEL:
            # Cancelled through the API while this tick worked (a cancel is not the
            # scheduler's to undo): the transition is dropped, not the tick's others. Its
            # GPUs, if it holds any, are stopped and freed at the next tick (`_release`).
            log.info("%s was cancelled meanwhile: not %s", w.id, event.value)
            return current
        new_state = transition(current.state, event)
        updated = replace(current, state=new_state, updated_at=now, **changes)  # type: ignore[arg-type]
        # A start records the GPUs its run holds: they are released when it ends, and billing
        # prices each run at the family of its own GPUs.
        held = updated.gpu_ids if event is WorkloadEvent.START else ()
        change = StateChange(w.id, now, event, current.state, new_state, reason, held)
        try:
            uow.workloads.save_transition(updated, change)
        except StateChanged as exc:
            # Cancelled through the API between the read above and this write: as above.
            log.info("%s changed meanwhile (%s): not %s", w.id, exc, event.value)
            return uow.workloads.get(w.id) or current
        self._announce.append(change)
        return updated

    def _get(self, workload_id: str) -> Workload:
        found = self._writer().workloads.get(workload_id)
        assert found is not None
        return found


_STARTED = (RunState.RUNNING, RunState.COMPLETED)
"""What a node reports of a run that it started."""


def _answer(error: BaseException | None) -> str:
    """What a node's answer says of a command: carried out, or the error (its type when it
    says nothing)."""
    if error is None:
        return "the node agent carried it out"
    return str(error) or repr(error)


def _preemption_reason(p: Preemption) -> str:
    return f"preempted ({p.reason.value}, {p.action.value})"


def _lost_to_failure(w: Workload, kept: float, now: datetime) -> float:
    """GPU-hours of work a failed run loses when it resumes from `kept`: the time since the
    checkpoint known (or its start); by progress when the nodes kept a checkpoint not yet seen,
    whose time is unknown."""
    hours = w.requirements.estimated_hours
    if kept > w.checkpoint and hours:
        return max(0.0, w.progress - kept) * hours * len(w.gpu_ids)
    return lost_gpu_hours(_running(w), now)


def _last_checkpoint(w: Workload) -> datetime:
    """When `w`'s work was last kept: its last checkpoint, or its start if later."""
    return max(
        (t for t in (w.checkpointed_at, w.started_at) if t is not None), default=w.updated_at
    )


def _keeps_work(p: Preemption) -> bool:
    return p.action in (PreemptionAction.CHECKPOINT, PreemptionAction.PAUSE)


def _resume(w: Workload, p: Preemption, resume: float | None, now: datetime) -> dict[str, Any]:
    """Where a preempted `w` will resume: the checkpoint its nodes took as they stopped it
    (`resume`); the last checkpoint known when they failed the stop (a node that is gone);
    the start when `p` does not keep its work."""
    if not (_keeps_work(p) and w.checkpointable):
        return {"progress": 0.0, "checkpoint": 0.0}
    if resume is None or resume <= w.checkpoint:
        return {"progress": w.checkpoint}
    return {"progress": resume, "checkpoint": resume, "checkpointed_at": now}


def _running(w: Workload) -> RunningWorkload:
    return RunningWorkload(spec_of(w), w.gpu_ids, w.started_at or w.updated_at, w.checkpointed_at)
