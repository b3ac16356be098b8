"""The live control loop: market -> plan -> scheduler -> dispatcher, once per tick, with the
fleet polled beside it. Every step is guarded: a failing step is logged and the loop keeps its
rhythm; nothing a device does can stop the platform."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import FleetMember, Member, Site
from hcp.domain.market import MarketSnapshot
from hcp.domain.plans import SitePlan
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.workloads import WorkloadState
from hcp.services.billing import BillingService
from hcp.services.events import PRICE_DATA, Event, EventBus, PublishFailed
from hcp.services.market import MarketService
from hcp.services.monitor import FleetMonitor, StatusRecorder
from hcp.services.planning import FleetCounts, Planner
from hcp.services.ports import Clock, MarketFeed, UnitOfWorkFactory
from hcp.services.scheduler import SchedulerService, TickReport
from hcp.services.telemetry import TelemetryRecorder

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsicDispatcher(Protocol):
    async def dispatch(
        self,
        plan: SitePlan,
        latest: dict[str, DeviceStatus],
        devices: Sequence[Member] | None = None,
        others_added_w: float = 0.0,
    ) -> None:
        """Move the site's miners towards `plan`; `devices` is the site's fleet as this tick
        read it (read again when not given); `others_added_w` is the power other devices
        (GPUs) were just ordered to add this tick, which the miners' rise must leave room for
        within the site's ramp."""
        ...

    async def confirm(self, latest: dict[str, DeviceStatus]) -> None:
        """Judge commands in flight by the newest statuses."""
        ...

    def held_asleep(self) -> Collection[str]:
        """Miners kept asleep now though they may read healthy (after an unhealthy spell):
        the plan cannot count on them."""
        ...

    def degraded(self) -> Collection[str]:
        """Miners given no work now though they may read healthy (out of attempts: one whose
        sleeps never landed still hashes): the plan cannot count on them."""
        ...


@dataclass
class TickOutcome:
    """What one control tick did and how long each step took (seconds)."""

    snapshot: MarketSnapshot | None = None
    plan: SitePlan | None = None
    scheduling: TickReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def healthy_counts(
    devices: Sequence[Member],
    latest: dict[str, DeviceStatus],
    draining: Collection[str] = (),
    held: Collection[str] = (),
) -> FleetCounts:
    """Devices a plan may count on: those whose last status is healthy (or not yet polled),
    not `held` by the dispatcher (asleep after a spell, or degraded), out of maintenance, but
    for the GPUs in maintenance that still hold a workload (`draining`): left out, that
    workload would take a place of the GPU budget and another would be stopped for it."""
    asics: Counter[str] = Counter()
    gpus: Counter[str] = Counter()
    for d in devices:
        if not _left_out(d, latest.get(d.id), held, draining):
            (asics if d.kind is DeviceKind.ASIC else gpus)[d.model_name] += 1
    return FleetCounts(dict(asics), dict(gpus))


def _left_out(
    d: Member, status: DeviceStatus | None, held: Collection[str], draining: Collection[str] = ()
) -> bool:
    """Whether the plan cannot count on `d`: unhealthy, held (asleep, or degraded) by the
    dispatcher, or in maintenance (a GPU still draining its workload excepted)."""
    unhealthy = status is not None and not status.healthy
    return unhealthy or d.id in held or (d.in_maintenance and d.id not in draining)


def unmanaged_watts(
    devices: Sequence[Member],
    latest: dict[str, DeviceStatus],
    answers: dict[str, DeviceStatus],
    held: Collection[str] = (),
) -> float:
    """W drawn, as far as known, by the miners a plan cannot count on (`healthy_counts` leaves
    them out): an unhealthy one, one held asleep or degraded (one whose sleeps never landed
    hashes on), or one in maintenance draws what it reads; an unreachable one may well still
    hash, so it is taken at what it drew when it last answered (nothing if it never did)."""
    watts = 0.0
    for d in devices:
        status = latest.get(d.id)
        if d.kind is not DeviceKind.ASIC or status is None or not _left_out(d, status, held):
            continue
        known = status if status.state != UNREACHABLE else answers.get(d.id)
        watts += known.power_w if known is not None else 0.0
    return watts


def _held(dispatcher: AsicDispatcher) -> set[str]:
    """Miners the dispatcher holds from the plan: asleep after a spell, or degraded."""
    return {*dispatcher.held_asleep(), *dispatcher.degraded()}


class ControlLoop:
    def __init__(
        self,
        site: Site,
        uow: UnitOfWorkFactory,
        clock: Clock,
        feed: MarketFeed,
        market: MarketService,
        planner: Planner,
        scheduler: SchedulerService,
        monitor: FleetMonitor,
        recorder: StatusRecorder,
        bus: EventBus,
        samples: TelemetryRecorder | None = None,
        dispatcher: AsicDispatcher | None = None,
        billing: BillingService | None = None,
        follow_fresh_for: timedelta | None = None,
    ) -> None:
        """`follow_fresh_for`, when given, makes each fleet poll also follow running GPU work
        (node statuses, progress, completions), and a tick skip its own follow when a poll
        did so within that long (platform time): the tick then only decides."""
        self.site = site
        self._uow = uow
        self._clock = clock
        self._feed = feed
        self._market = market
        self._planner = planner
        self._scheduler = scheduler
        self._monitor = monitor
        self._recorder = recorder
        self._samples = samples
        self._bus = bus
        self._dispatcher = dispatcher
        self._billing = billing
        self._follow_fresh_for = follow_fresh_for
        self.last_follow: TickReport | None = None
        self._metered_until = clock.now()
        self._price_in_force: float | None = None  # USD/MWh of the interval being metered
        self._started_at = self._metered_until
        self._resuming = False  # see resume_metering
        self._on_nodes: set[str] = set()
        self._followed = False
        self.last: TickOutcome | None = None
        self._last_gpu_budget = 0  # GPUs the last plan allowed customers (none before one)

    async def tick(self) -> TickOutcome:
        """Advance the market one interval, plan it, schedule GPUs, dispatch miners."""
        out = TickOutcome()
        snapshot = await self._step(out, "market", self._next_market)
        out.snapshot = snapshot
        devices: list[FleetMember] = []
        if snapshot is not None:
            # One read of the fleet serves the plan and the dispatch.
            out.plan = await self._step(out, "plan", lambda: self._plan(snapshot, devices))
        budget = self._gpu_budget(out.plan)
        follow = not self._followed_recently()
        out.scheduling = await self._step(
            out, "schedule", lambda: self._scheduler.tick({self.site.id: budget}, follow)
        )
        if out.scheduling is not None and follow:
            self._note_follow(out.scheduling)
        dispatcher, plan = self._dispatcher, out.plan
        if plan is not None and dispatcher is not None:
            latest = self._monitor.latest
            fleet = devices or None
            added = out.scheduling.power_added_w if out.scheduling is not None else {}
            gpus_w = added.get(self.site.id, 0.0)
            await self._step(
                out, "dispatch", lambda: dispatcher.dispatch(plan, latest, fleet, gpus_w)
            )
        if self._billing is not None:
            # The time since the last tick ran at the previous interval's price.
            in_force = self._price_in_force
            await self._step(out, "meter", lambda: self._meter(in_force))
            if snapshot is not None:
                self._price_in_force = snapshot.electricity(self.site.node)
        self.last = out
        return out

    def _gpu_budget(self, plan: SitePlan | None) -> int:
        """GPUs the scheduler may keep busy: the plan's, or the last plan's when this tick has
        none (its market or plan step failed). A failed step must not shed the customers'
        work; the miners, which give power up first, then keep their last commands too."""
        if plan is not None:
            self._last_gpu_budget = plan.gpu_budget()
        return self._last_gpu_budget

    def resume_metering(self) -> None:
        """Bill the time from the store's last metered instant to this loop's start for the
        work that ran on meanwhile: after a restart, or when this process took over from a
        leader that died, GPU nodes of their own kept running it and nobody metered.

        The nodes' word decides, so it is billed at the first metering after they were asked
        (and the store's last metered instant is read then, when any leader before this one
        has stopped): a workload its nodes still run or finished (then up to the instant they
        give) is billed for that time; one they no longer know (the platform's own simulated
        nodes died with it) or could not be asked about is not, since nothing shows it ran.
        Work stored as ended meanwhile (a poll saw it finish after the last metering, a
        customer cancelled it) is billed up to its stored end, whatever the nodes say now.
        Metered past this loop's start already, the store is where this loop's metering
        carries on from."""
        self._resuming = True

    def _note_follow(self, report: TickReport) -> None:
        self._followed = True
        if self._resuming:
            self._on_nodes.update(report.on_nodes)

    async def _meter(self, price: float | None) -> int:
        """Bill the time since the last metering (a rerun of the same interval adds nothing).
        Resuming, nothing is billed before the nodes were asked: this loop's own records
        would put the store's last metered instant past its start, and the time no loop ran
        would be taken as metered."""
        if self._resuming and not self._followed:
            return 0
        if self._resuming and self._billing is not None:
            self._resuming = False
            vouched, self._on_nodes = frozenset(self._on_nodes), set()
            try:
                await self._meter_unseen(vouched)
            except Exception:  # the loop's own metering goes on; that time is left unbilled
                log.exception("billing the time no control loop ran failed; it stays unbilled")
        return await self._meter_since_last(price)

    async def _meter_unseen(self, vouched: frozenset[str]) -> None:
        """Bill [the store's last metered instant, this loop's start) for `vouched` work, and
        for work the store holds as ended in it (recorded then, so never asked about again)."""
        billing = self._billing
        assert billing is not None
        since = await asyncio.to_thread(self._stored_metered_until)
        started = self._started_at
        if since is None or since == started:
            return
        if since > started:  # metered past this start (a sped-up run, a leader meanwhile)
            self._metered_until = max(self._metered_until, since)
            return
        # That time runs at the price stored last before it (the one then in force).
        in_force = await asyncio.to_thread(self._stored_price_at, since)
        new = await asyncio.to_thread(billing.meter, since, started, in_force, vouched)
        log.warning(
            "billed %s to %s, while no control loop ran, for the %d workloads their nodes "
            "vouch for (%d usage records)",
            since.isoformat(),
            started.isoformat(),
            len(vouched),
            new,
        )

    def _stored_metered_until(self) -> datetime | None:
        with self._uow() as uow:
            return uow.billing.metered_until()

    def _stored_price_at(self, at: datetime) -> float | None:
        with self._uow() as uow:
            snapshot = uow.market.latest(until=at)
        try:
            return None if snapshot is None else snapshot.electricity(self.site.node)
        except KeyError:
            return None

    async def _meter_since_last(self, price: float | None) -> int:
        """Bill up to the last time the GPU nodes were asked about the work, not past it: a
        workload may have finished since (a tick that relies on a recent poll's follow), and
        billed time is never taken back. The rest is billed at the next metering."""
        end = self._clock.now()
        followed = self._scheduler.followed_at
        if followed is not None:
            end = min(end, followed)
        start = self._metered_until
        if end <= start or self._billing is None:
            return 0
        new = await asyncio.to_thread(self._billing.meter, start, end, price)
        self._metered_until = end
        return new

    async def poll(self) -> list[DeviceStatus]:
        """One sweep of the fleet, recorded."""
        statuses = await self._monitor.poll()
        await self._recorder.commit()
        if self._samples is not None:
            await self._samples.commit()
        if self._dispatcher is not None:
            await self._dispatcher.confirm(self._monitor.latest)
        if self._follow_fresh_for is not None:
            try:
                self.last_follow = await self._scheduler.follow()
            except Exception:  # the next tick follows instead
                log.exception("following running GPU work failed")
            else:
                self._note_follow(self.last_follow)
                for error in self.last_follow.errors:
                    log.warning("following running GPU work: %s", error)
        return statuses

    def _followed_recently(self) -> bool:
        fresh_for, at = self._follow_fresh_for, self._scheduler.followed_at
        return fresh_for is not None and at is not None and self._clock.now() - at <= fresh_for

    async def _step(
        self, out: TickOutcome, name: str, action: Callable[[], Awaitable[T]]
    ) -> T | None:
        started = time.perf_counter()
        try:
            return await action()
        except Exception as exc:  # one failing step must not stop the loop
            log.exception("control step %s failed", name)
            out.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        finally:
            out.seconds[name] = round(time.perf_counter() - started, 4)

    def _site_devices(self) -> list[FleetMember]:
        with self._uow() as uow:
            return uow.fleet.members(self.site.id)

    def _holding(self, gpu_ids: set[str]) -> set[str]:
        """Those of `gpu_ids` that a running workload holds."""
        with self._uow() as uow:
            running = uow.workloads.in_states([WorkloadState.RUNNING])
        return {g for w in running for g in w.gpu_ids if g in gpu_ids}

    async def _next_market(self) -> MarketSnapshot | None:
        snapshot = self._feed.next_snapshot()
        if snapshot is None:
            return None
        await asyncio.to_thread(self._market.record, snapshot, "simulator")
        payload = {
            "electricity_usd_per_mwh": dict(snapshot.electricity_usd_per_mwh),
            "btc_usd": snapshot.btc_usd,
            "difficulty": snapshot.difficulty,
            "fees_btc_per_day": snapshot.fees_btc_per_day,
            "gpu_spot_usd_per_gpu_hour": dict(snapshot.gpu_spot_usd_per_gpu_hour),
        }
        try:
            await self._bus.publish(Event(PRICE_DATA, self.site.node, snapshot.at, payload))
        except PublishFailed as error:  # stored above: the tick plans with it all the same
            log.warning("the price of %s is not on the bus: %s", snapshot.at.isoformat(), error)
        return snapshot

    async def _plan(self, snapshot: MarketSnapshot, devices: list[FleetMember]) -> SitePlan:
        """Plan the interval of `snapshot`; fills `devices` with the site's fleet as read."""
        devices.extend(await asyncio.to_thread(self._site_devices))
        latest = self._monitor.latest
        cordoned = {d.id for d in devices if d.in_maintenance and d.kind is DeviceKind.GPU}
        draining = await asyncio.to_thread(self._holding, cordoned) if cordoned else set()
        held = _held(self._dispatcher) if self._dispatcher is not None else set()
        counts = healthy_counts(devices, latest, draining, held)
        # Miners left out of the plan still draw power: the plan gets what is left of the MW.
        held_w = unmanaged_watts(devices, latest, self._monitor.last_answers, held)
        site = self.site
        if held_w > 0:
            left_mw = max(site.capacity_mw - held_w * site.pue / 1e6, 0.0)
            site = replace(site, capacity_mw=left_mw)
        # The solve is CPU work: keep it off the event loop so the API answers meanwhile.
        plan = await asyncio.to_thread(
            self._planner.plan, site, counts, snapshot, self._clock.now()
        )
        with self._uow() as uow:
            uow.plans.add(plan)
            uow.commit()
        return plan
