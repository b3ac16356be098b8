"""Composition root: the only module that imports both adapters and services."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from hcp.adapters.bus.memory import InMemoryBus
from hcp.adapters.bus.nats import NatsJetStreamBus
from hcp.adapters.clock import CLOCK_HEARTBEAT_S, ScaledClock, SystemClock, anchor_of
from hcp.adapters.db.dispatch_log import SqlCommandLog, SqlDispatchStatus
from hcp.adapters.db.dispatch_memory import SqlDispatchMemory
from hcp.adapters.db.engine import SqliteCheckpointer, make_engine, make_session_factory
from hcp.adapters.db.migrate import is_current, upgrade
from hcp.adapters.db.platform_clock import SqlClockAnchors
from hcp.adapters.db.repositories import SqlUnitOfWork
from hcp.adapters.db.telemetry import TelemetryStore
from hcp.adapters.devices.fleet_readers import DcgmFleetReader, LuxosFleetReader
from hcp.adapters.devices.gpu_runner import NodeAgentGpuRunner, split_address
from hcp.adapters.devices.io_workers import WorkerTransport
from hcp.adapters.devices.luxos_driver import DEVICE_TIMEOUT_S, LuxosMinerDriver
from hcp.adapters.devices.site_file import DeviceFile, ExternalSite, load_device_file
from hcp.adapters.group_commit import GroupCommitWriter
from hcp.adapters.market.simulated import MarketSimulatorConfig, SimulatedMarketFeed
from hcp.config import DEMO_KEYS_FILE, Settings
from hcp.dispatch.model import DispatchPolicy
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import HcpError
from hcp.domain.fleet import Device, Member, Site
from hcp.domain.identity import Customer, Principal, Role
from hcp.domain.plans import SitePlan
from hcp.domain.status import DeviceStatus
from hcp.domain.workloads import StateChange
from hcp.services.auth import Authenticator, issue_key
from hcp.services.billing import BillingService
from hcp.services.control import ControlLoop
from hcp.services.dashboard import DashboardService
from hcp.services.dispatcher import Dispatcher, SiteDispatcher, status_of
from hcp.services.events import (
    ASIC_METRICS,
    GPU_METRICS,
    BusClosed,
    Event,
    EventBus,
    PublishFailed,
    workload_event,
)
from hcp.services.fleet import FleetService, SiteSpec, provision_site
from hcp.services.identity import FAST_TEST_HASHER, IdentityService
from hcp.services.market import MarketService
from hcp.services.monitor import FleetMonitor, FleetReader, StatusRecorder
from hcp.services.planning import planner_named
from hcp.services.platform import Platform
from hcp.services.ports import (
    Clock,
    DispatchStatusStore,
    MarketFeed,
    UnitOfWork,
    UnitOfWorkFactory,
    WorkloadWriter,
)
from hcp.services.ratelimit import RateLimiter
from hcp.services.scheduler import SchedulerService
from hcp.services.telemetry import TelemetryRecorder, TelemetryService
from hcp.services.workloads import WorkloadService
from hcp.simulators.site import SimulatedSite

log = logging.getLogger(__name__)

BUS_DRAIN_S = 5.0
"""How long stopping the live site waits for the recorders to take what the bus holds."""
FLEET_TOPICS = (ASIC_METRICS, GPU_METRICS)

DEMO_CUSTOMER_ID = "cust-001"
DEMO_LOGINS: tuple[tuple[str, str, Role, str | None], ...] = (
    ("admin", "admin@hcp.local", Role.ADMIN, None),
    ("customer", "customer@hcp.local", Role.CUSTOMER, DEMO_CUSTOMER_ID),
)
"""Dashboard users made on first start: (key prefix in demo-keys.json, email, role, customer)."""


@dataclass
class Runtime:
    """Everything `hcp up` and `hcp api` run on."""

    settings: Settings
    engine: Engine
    clock: Clock
    platform: Platform
    unit_of_work: UnitOfWorkFactory
    writer: WorkloadWriter
    checkpointer: SqliteCheckpointer

    def close(self) -> None:
        self.writer.close()
        self.checkpointer.stop()
        self.engine.dispose()


def build(settings: Settings, clock: Clock | None = None, wall: Clock | None = None) -> Runtime:
    """Wire adapters to services for `settings`; opens no connection yet.

    `clock` is platform time: the market, plans, workloads, billing and telemetry. `wall` is
    the time of the people using the API: sessions, keys, the login throttle and rate limits
    keep it, so `--speed 60` does not end a dashboard login in 12 minutes or refill rate
    limits 60 times as fast. By default it is the wall clock under a scaled clock, else
    `clock` itself (a test's manual clock moves both)."""
    engine = make_engine(settings.effective_database_url)
    factory = make_session_factory(engine)
    clock = clock or SystemClock()
    wall = wall or (SystemClock() if isinstance(clock, ScaledClock) else clock)

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(factory)

    market = MarketService(uow, clock=clock)
    writer = GroupCommitWriter(uow)
    auth = Authenticator(uow, wall)
    telemetry = TelemetryService(TelemetryStore(engine), clock)
    billing = BillingService(uow, clock, power=telemetry)
    platform = Platform(
        workloads=WorkloadService(uow, writer, clock, prices=lambda: billing.sheet),
        auth=auth,
        market=market,
        fleet=FleetService(uow, clock),
        identity=IdentityService(
            uow, wall, auth, FAST_TEST_HASHER if settings.env == "test" else None
        ),
        dashboard=DashboardService(uow, clock, secure_cookies=settings.env == "production"),
        billing=billing,
        telemetry=telemetry,
        dispatch_log=SqlCommandLog(engine, settings.site_id),
        dispatch_status=SqlDispatchStatus(engine),
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        health=lambda: _health(engine, market, clock, settings),
    )
    checkpointer = SqliteCheckpointer(engine)
    checkpointer.start()
    return Runtime(settings, engine, clock, platform, uow, writer, checkpointer)


def _health(
    engine: Engine, market: MarketService, clock: Clock, settings: Settings
) -> dict[str, str]:
    components: dict[str, str] = {}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        components["database"] = "ok"
        components["schema"] = (
            "ok" if is_current(engine) else "migrations pending: run `hcp db upgrade`"
        )
    except Exception as exc:  # report, never raise, from a health check
        components["database"] = f"unreachable: {type(exc).__name__}"
        return components
    try:
        snapshot, _site = market.current()
        age = clock.now() - snapshot.at
        stale = (
            age > timedelta(seconds=max(3 * settings.tick_seconds, 900))
            and settings.env == "production"
        )
        components["market"] = "stale" if stale else "ok"
    except Exception as exc:
        components["market"] = str(exc)
    return components


def site_spec(settings: Settings) -> SiteSpec:
    site = Site(
        id=settings.site_id,
        name=settings.site_name,
        node=settings.site_node,
        capacity_mw=settings.site_capacity_mw,
        pue=settings.site_pue,
        contract={"kind": "rt", "adder_usd_per_mwh": 0.0},
    )
    return SiteSpec(
        site,
        settings.site_asic_model,
        settings.site_asics,
        settings.site_gpu_model,
        settings.site_gpus,
        settings.site_gpus_per_node,
    )


class FleetMismatch(HcpError):
    """The stored site holds more or other devices than the fleet size asked for."""


def prepare(
    runtime: Runtime,
    *,
    fleet_asked: Collection[DeviceKind] = (),
    device_file: DeviceFile | None = None,
) -> dict[str, str] | None:
    """Migrate, provision the simulated site (a stored one grows to the settings), and on
    first start create the demo keys.

    `fleet_asked` holds the kinds whose count the user gave on the command line. A stored
    site with more devices of another kind keeps them; with more of a kind asked for, or
    other models, or GPUs laid out otherwise, it is kept as it is, with a warning, or with
    `fleet_asked` a FleetMismatch, raised before anything is written; so is the DataError of
    a `device_file` that cannot place the site's miners.
    Returns the new keys ({"admin": ..., "customer": ...}) when they were created now.
    """
    upgrade(runtime.engine)
    spec = site_spec(runtime.settings)
    _resume_platform_time(runtime, spec.site.id)
    now = runtime.clock.now()
    unasked = [kind for kind in DeviceKind if kind not in fleet_asked]
    with runtime.unit_of_work() as uow:
        stored = uow.fleet.devices(site_id=spec.site.id)
        held = sum(d.kind is DeviceKind.ASIC for d in stored)
        change = provision_site(uow, spec, now, keep_larger=unasked)
        if change.kept is not None:
            message = (
                f"the database holds site {spec.site.id} with {change.kept}; a site is not "
                "shrunk or rearranged (its devices have history): give that site its own var "
                "dir (HCP_VAR_DIR, which holds its SQLite database and demo keys), or its own "
                "HCP_DATABASE_URL and HCP_VAR_DIR"
            )
            if fleet_asked:
                raise FleetMismatch(message)
            log.warning("%s; keeping the stored site", message)
        if change.larger is not None:
            log.warning("site %s keeps the stored %s", spec.site.id, change.larger)
        if change.changed is not None:
            log.info("site %s now has %s", spec.site.id, change.changed)
        if change.added and not change.created:
            log.info("site %s: %d devices added to the stored site", spec.site.id, change.added)
        if device_file is not None:  # the miners the site has now: grown, or kept as stored
            miners = held if change.kept is not None else max(held, spec.asics)
            device_file.miner_addresses(miners)
        uow.commit()
    publish_clock(runtime)
    return _ensure_demo_keys(runtime, now)


def publish_clock(runtime: Runtime) -> None:
    """Store where the platform clock stands against the wall, for API processes (`hcp api`)
    to keep the same platform time; the leading process renews it every CLOCK_HEARTBEAT_S."""
    anchor = anchor_of(runtime.clock)
    if anchor is not None:
        SqlClockAnchors(runtime.engine, runtime.settings.site_id).save(anchor)


def _resume_platform_time(runtime: Runtime, site_id: str) -> None:
    """A scaled clock (`hcp up` with simulated devices) carries on from the newest market
    interval, plan and metered usage the store holds when they are ahead of it: after a
    `--speed` run platform time is ahead of the wall, and starting behind it would plan
    intervals already planned and meter usage already billed. The wall clock (`hcp up` with
    devices elsewhere, which keep wall time) cannot move: the gap is only logged."""
    clock = runtime.clock
    with runtime.unit_of_work() as uow:
        snapshot, plan = uow.market.latest(), uow.plans.latest(site_id)
        metered = uow.billing.metered_until()
    times = (snapshot.at if snapshot else None, plan.created_at if plan else None, metered)
    stored = [t for t in times if t is not None]
    now = clock.now()
    newest = max(stored, default=now)
    if newest <= now:
        return
    if isinstance(clock, ScaledClock):
        clock.resume_at(newest)
        log.warning(
            "platform time resumes at %s, the newest stored record, %s ahead of the clock "
            "(an earlier run was sped up)",
            newest.isoformat(),
            newest - now,
        )
    else:
        log.warning(
            "the store holds records up to %s, %s ahead of the clock (an earlier run was sped "
            "up); platform time keeps to the clock",
            newest.isoformat(),
            newest - now,
        )


def _ensure_demo_keys(runtime: Runtime, now: datetime) -> dict[str, str] | None:
    """First start: the demo customer, an admin and a customer API key, and dashboard logins for
    both, written to var/demo-keys.json. A database with keys but no user yet (made before the
    dashboard existed) gets the logins alone. Returns the keys when they were made now."""
    path = runtime.settings.var_dir / DEMO_KEYS_FILE
    keys: dict[str, str] | None = None
    with runtime.unit_of_work() as uow:
        needs_logins, needs_keys = not uow.users.all(), not uow.api_keys.all()
        if (needs_logins or needs_keys) and uow.customers.get(DEMO_CUSTOMER_ID) is None:
            uow.customers.add(Customer(DEMO_CUSTOMER_ID, "Demo customer", now))
        if needs_keys:
            admin = issue_key(
                uow, name="admin (first start)", role=Role.ADMIN, customer_id=None, now=now
            )
            customer = issue_key(
                uow, name="demo customer", role=Role.CUSTOMER, customer_id=DEMO_CUSTOMER_ID, now=now
            )
            keys = {
                "admin": admin.secret,
                "customer": customer.secret,
                "customer_id": DEMO_CUSTOMER_ID,
            }
            # The file first: if we die before the commit, the next start makes new keys and
            # overwrites it; the other order could leave working keys nobody knows.
            write_private_json(path, keys)
        uow.commit()
    if needs_logins:
        logins = _create_demo_logins(runtime.platform.identity, path)
        keys = None if keys is None else {**keys, **logins}
    return keys


def _create_demo_logins(identity: IdentityService, path: Path) -> dict[str, str]:
    """Dashboard users for the demo admin and customer with random passwords, added to the keys
    file before the users are stored (the file first, for the reason given above)."""
    system = Principal("system:first-start", Role.ADMIN, None)
    logins: dict[str, str] = {}
    for who, email, _role, _customer in DEMO_LOGINS:
        logins |= {f"{who}_email": email, f"{who}_password": secrets.token_urlsafe(12)}
    known = json.loads(path.read_text()) if path.exists() else {}
    write_private_json(path, {**known, **logins})
    # One transaction for both: a start killed between two would leave the file naming a
    # login that does not exist, and the next start (users exist) would not make it.
    identity.store_users(
        [
            identity.new_user(
                system,
                email=email,
                name=f"Demo {who}",
                role=role,
                password=logins[f"{who}_password"],
                customer_id=customer_id,
            )
            for who, email, role, customer_id in DEMO_LOGINS
        ]
    )
    # Secrets never go to the log: `hcp up` prints them once, and the keys file keeps them.
    log.info(
        "Dashboard logins for %s and %s written to %s",
        logins["admin_email"],
        logins["customer_email"],
        path,
    )
    return logins


def write_private_json(path: Path, data: dict[str, str]) -> None:
    """Write `data` to `path` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the secrets are not left behind in a stray file
        raise


def market_feed(settings: Settings, start: datetime) -> MarketFeed:
    """The simulated market for the site's node, stepping once per tick."""
    step = timedelta(seconds=settings.tick_seconds)
    aligned = datetime.fromtimestamp(
        start.timestamp() // step.total_seconds() * step.total_seconds(), UTC
    )
    config = MarketSimulatorConfig(nodes=(settings.site_node,))
    return SimulatedMarketFeed(config, start=aligned, step=step, seed=settings.market_seed)


@dataclass
class Live:
    """The running site (simulated, or devices elsewhere) and control loop of `hcp up`."""

    control: ControlLoop
    site: SimulatedSite | ExternalSite
    bus: EventBus
    runner: NodeAgentGpuRunner
    gpu_reader: DcgmFleetReader
    recorder: StatusRecorder
    samples: TelemetryRecorder
    dispatcher: LoggedDispatcher
    device_io: WorkerTransport | None = None

    async def settle(self) -> None:
        """Send the commands being dispatched, deliver every published event and store what
        it carries (tests, shutdown)."""
        await self.dispatcher.delivered()
        await self.bus.drain()
        await self.recorder.commit()
        await self.samples.commit()


class LoggedDispatcher:
    """The site dispatcher, its memory of the miners (what changed of it) and then its command
    log written once per dispatch, delivery or confirmation, and the dispatch's status stored
    for the API once planned and again once delivered."""

    def __init__(
        self,
        site: SiteDispatcher,
        command_log: SqlCommandLog,
        driver: LuxosMinerDriver,
        status: DispatchStatusStore,
        site_id: str,
    ) -> None:
        self.site = site
        self.driver = driver
        self._log = command_log
        self._status = status
        self._site_id = site_id
        self._logged: asyncio.Task[None] | None = None

    async def dispatch(
        self,
        plan: SitePlan,
        latest: dict[str, DeviceStatus],
        devices: Sequence[Member] | None = None,
        others_added_w: float = 0.0,
    ) -> None:
        try:
            await self.site.dispatch(plan, latest, devices, others_added_w)
        finally:
            await self._write()
        await asyncio.to_thread(self._save_status)
        self._logged = asyncio.create_task(self._log_delivery())

    def held_asleep(self) -> set[str]:
        return self.site.held_asleep()

    def degraded(self) -> set[str]:
        return self.site.degraded()

    async def _log_delivery(self) -> None:
        """Write the command log once the commands sent in the background are out."""
        try:
            await self.site.delivered()
        finally:
            await self._write()
        await asyncio.to_thread(self._save_status)

    def _save_status(self) -> None:
        report = self.site.dispatcher.last_report
        if report is not None:
            self._status.save(status_of(self._site_id, report))

    async def delivered(self) -> None:
        """Wait until the last dispatch's commands are sent and logged (a failure there is
        logged, never raised here; waiting never cancels the sends)."""
        await self.site.delivered()  # also when a cancel came before the log task was made
        logged = self._logged
        if logged is not None:
            await asyncio.wait({logged})
            if not logged.cancelled() and (error := logged.exception()) is not None:
                log.error("writing the command log failed", exc_info=error)

    async def confirm(self, latest: dict[str, DeviceStatus]) -> None:
        """Settle commands in flight from a fleet poll (sooner than the next tick)."""
        try:
            await self.site.confirm_latest(latest)
        finally:
            await self._write()

    async def _write(self) -> None:
        """Store what changed of the dispatcher's memory, then the command log (a failure of
        either is raised once both were tried). The memory first: a command in flight that
        it does not hold is one that nothing would settle after a restart."""
        try:
            await self.site.store_memory()
        finally:
            await asyncio.to_thread(self._log.flush)


async def start_live(runtime: Runtime, device_file: DeviceFile | None = None) -> Live:
    """Start the simulators for the stored fleet, or reach the devices of the settings'
    devices file (`device_file`: that file already read), and wire the control loop to them."""
    settings, uow = runtime.settings, runtime.unit_of_work
    with uow() as unit:
        site = unit.fleet.site(settings.site_id)
        devices = unit.fleet.devices(site_id=settings.site_id)
    if site is None:
        raise RuntimeError(f"site {settings.site_id} is not provisioned; run prepare() first")
    # First: a bus that does not answer stops the start before any device is reached.
    bus = await event_bus(settings)
    try:
        return await _start_live(runtime, bus, site, devices, device_file)
    except BaseException:
        await bus.close()
        raise


async def _start_live(
    runtime: Runtime,
    bus: EventBus,
    site: Site,
    devices: list[Device],
    device_file: DeviceFile | None,
) -> Live:
    settings, clock, uow = runtime.settings, runtime.clock, runtime.unit_of_work
    simulated: SimulatedSite | ExternalSite
    if settings.devices_file is None:
        simulated = SimulatedSite(devices, clock)
    else:
        addressed = device_file or load_device_file(settings.devices_file)
        simulated = ExternalSite(devices, addressed)
    addresses = await simulated.start()
    asic_addresses = {d: f"{h}:{p}" for d, (h, p) in addresses.asics.items()}
    with uow() as unit:
        unit.fleet.set_addresses(asic_addresses)
        unit.commit()
    command_log = SqlCommandLog(runtime.engine, settings.site_id)
    # Deadlines are in platform time: a poll every poll_seconds of wall time is `speed` times
    # as long on a sped-up clock.
    speed = getattr(clock, "speed", 1.0)
    # The miners' minimum on and off time: the optimizer plans counts within them, and the
    # dispatcher chooses which miners switch so that none switches back inside its own.
    policy = DispatchPolicy(
        poll_interval_s=settings.poll_seconds * speed,
        min_on_s=settings.site_min_on_minutes * 60,
        min_off_s=settings.site_min_off_minutes * 60,
    )
    device_io = None
    if settings.device_io_workers:
        # The miners' sockets in worker processes: one process's core does not carry the
        # exchanges of a large fleet (io_workers.py).
        device_io = WorkerTransport(settings.device_io_workers, timeout_s=DEVICE_TIMEOUT_S)
    driver = LuxosMinerDriver(clock=clock, transport=device_io)
    # The ramp limit at the miners: a plan's grid MW over PUE (the dispatcher staggers what it
    # wakes or clocks up to keep each tick's rise within it).
    ramp = settings.site_ramp_mw_per_tick
    rise_w = math.inf if ramp is None else ramp * 1e6 / site.pue
    miners = SiteDispatcher(
        Dispatcher(driver, command_log, policy),
        uow,
        clock,
        rise_w,
        SqlDispatchMemory(runtime.engine, settings.site_id),
    )
    await _restore_dispatch(miners, command_log, asic_addresses, clock)
    dispatcher = LoggedDispatcher(
        miners,
        command_log,
        driver,
        runtime.platform.dispatch_status,
        settings.site_id,
    )
    announce = announcer(bus, asyncio.get_running_loop())
    runtime.platform.workloads.on_change(announce)
    recorder = StatusRecorder(uow)
    samples = TelemetryRecorder(runtime.platform.telemetry, clock)
    await subscribe_recorders(bus, recorder, samples)
    gpus = {split_address(d.address): d.id for d in devices if d.kind is DeviceKind.GPU}
    gpu_reader = DcgmFleetReader(gpus, addresses.node_url, clock)
    readers: dict[str, FleetReader] = {
        ASIC_METRICS: LuxosFleetReader(addresses.asics, clock, transport=device_io),
        GPU_METRICS: gpu_reader,
    }
    runner = NodeAgentGpuRunner(addresses.node_url)
    control = ControlLoop(
        site=site,
        uow=uow,
        clock=clock,
        feed=market_feed(settings, clock.now()),
        market=runtime.platform.market,
        planner=planner_named(
            settings.planner,
            uow,
            timedelta(seconds=settings.tick_seconds),
            ramp,
            timedelta(minutes=settings.site_min_on_minutes),
            timedelta(minutes=settings.site_min_off_minutes),
        ),
        scheduler=SchedulerService(uow, runner, clock, on_change=announce, commands=command_log),
        monitor=FleetMonitor(readers, bus),
        recorder=recorder,
        samples=samples,
        bus=bus,
        billing=runtime.platform.billing,
        dispatcher=dispatcher,
        # Each poll follows running GPU work too; a tick whose last follow is at most two
        # poll intervals old (platform time) need not ask the nodes again, nor one a tick
        # interval old where ticks come faster than polls (work is then followed as often).
        follow_fresh_for=timedelta(
            seconds=min(
                2 * settings.poll_seconds * speed,  # polls come every poll_seconds of wall time
                settings.tick_seconds,  # ticks come every tick_seconds of platform time
            )
        ),
    )
    # Work that ran on while no control loop ran is billed once its nodes vouch for it.
    control.resume_metering()
    if device_io is not None:
        await device_io.start()  # last: nothing after it can fail and leave workers running
    return Live(
        control,
        simulated,
        bus,
        runner,
        gpu_reader,
        recorder,
        samples,
        dispatcher,
        device_io,
    )


async def _restore_dispatch(
    miners: SiteDispatcher, command_log: SqlCommandLog, addresses: dict[str, str], clock: Clock
) -> None:
    """The dispatcher carries on from what the site's last leader remembered (this process
    before a restart, or a leader that died): its miners held asleep stay asleep, degradations
    and attempts count on, and its commands in flight are settled by the next telemetry or
    their deadline. Miner commands the log still calls sent that it does not know in flight
    are marked failed: nothing would settle them."""
    restored = await miners.restore_memory(addresses)
    in_flight = {m.pending.id for m in restored if m.pending is not None}
    detail = "not settled: the controller stopped before it knew the command in flight"
    failed = await asyncio.to_thread(command_log.fail_unknown, in_flight, clock.now(), detail)
    if restored or failed:
        log.info(
            "site dispatcher: took up the memory of %d miners (%d commands in flight); %d "
            "commands nobody knew in flight marked failed",
            len(restored),
            len(in_flight),
            failed,
        )


async def event_bus(settings: Settings) -> EventBus:
    """The bus HCP_BUS_URL names: in-process, or NATS JetStream on the stream and subjects of
    `effective_bus_prefix`, connected (BusUnavailable, naming the URL, if it does not answer)."""
    servers = settings.bus_servers
    if servers is None:
        return InMemoryBus()
    prefix = settings.effective_bus_prefix
    return await NatsJetStreamBus(servers, stream=prefix, prefix=f"{prefix}.").connect()


async def check_bus(settings: Settings) -> None:
    """Reach the settings' bus and let it go: a standby learns now, not when it takes the
    lead, that its bus does not answer (BusUnavailable)."""
    bus = await event_bus(settings)
    await bus.close()


async def subscribe_recorders(
    bus: EventBus, recorder: StatusRecorder, samples: TelemetryRecorder
) -> None:
    """Subscribe the recorders that store the fleet topics: the devices' statuses
    (`status-<topic>`) and their telemetry samples (`telemetry-<topic>`), under durable names.

    Where they run: only in the process that runs the site's control loop. `start_live` is
    called by `hcp up` once it holds the site, and by `hcp controller` only when `lead` has
    given it the site, so a standby subscribes nothing and stores nothing. That is the sound
    place rather than a consumer in every process: the events come from that same loop's
    monitor, and on the in-process bus the recorders write their batches when that loop's
    poll commits them (a standby has no poll, and would hold what it took unwritten).

    Why durable names: on NATS a durable consumer keeps its place on the server, so a
    restarted (or a new) leader resumes at the first event not acknowledged; and the names
    are the same in every process of the site (the stream is the site's, see
    HCP_BUS_PREFIX), so two processes subscribed at once, the old leader stopping while the
    new one starts, share one consumer: each event goes to one of them (work-queue
    semantics), never stored twice. In-process the names only reserve themselves.

    What acknowledged means: stored. A handler puts the event in its recorder's batch for the
    topic; each subscription's commit writes that batch, and NATS acknowledges a fetched batch
    of events only once that commit has returned (a failed commit takes them all back, to be
    delivered again). So a process killed at any moment loses no event the broker let go of.
    The poll also commits, which is how the in-process bus's events reach the store (that bus
    keeps nothing across a crash anyway). Redelivered events are harmless: the telemetry store
    keeps one value per series and millisecond, and a status never replaces a newer one."""
    for topic in FLEET_TOPICS:
        await bus.subscribe(
            topic,
            recorder.handle,
            durable=f"status-{topic}",
            commit=functools.partial(recorder.commit, topic),
        )
        await bus.subscribe(
            topic,
            samples.handle,
            durable=f"telemetry-{topic}",
            commit=functools.partial(samples.commit, topic),
        )


def announcer(bus: EventBus, loop: asyncio.AbstractEventLoop) -> Callable[[StateChange], None]:
    """Publish each stored workload transition on the bus, from any thread (an API cancel runs
    in a worker thread; the bus lives on the event loop)."""

    in_flight: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def send(event: Event) -> None:
        try:
            await bus.publish(event)
        except (PublishFailed, BusClosed) as error:  # stored already; the bus is away or gone
            log.warning("workload event %s of %s not published: %s", event.id, event.key, error)

    def publish(event: Event) -> None:
        task = loop.create_task(send(event))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    def announce(change: StateChange) -> None:
        loop.call_soon_threadsafe(publish, workload_event(change))

    return announce


async def stop_live(live: Live) -> None:
    await live.dispatcher.delivered()  # every exchange has a timeout, so this ends
    await live.dispatcher.driver.close()  # log off: a LuxOS miner allows one session at a time
    if live.device_io is not None:
        await live.device_io.close()
    # The recorders take what the bus still holds for them (bounded: on NATS, what is left
    # waits in the durable consumers for the next leader), then the bus lets go.
    try:
        await asyncio.wait_for(live.bus.drain(), BUS_DRAIN_S)
    except TimeoutError:
        log.warning("the recorders did not take every event within %g s", BUS_DRAIN_S)
    except Exception:
        log.exception("draining the event bus failed")
    await live.bus.close()
    # What the recorders hold since the last commit (on the in-process bus, a poll's
    # statuses mostly reach them after its commit): stored now, or lost with the process.
    try:
        await live.recorder.commit()
        await live.samples.commit()
    except Exception:  # the devices and nodes are let go all the same
        log.exception("storing the last statuses and samples at shutdown failed")
    await live.runner.aclose()
    await live.gpu_reader.aclose()
    await live.site.stop()


async def run_control(runtime: Runtime, live: Live, tick_s: float, poll_s: float) -> None:
    """Tick every `tick_s` and poll every `poll_s` wall seconds until cancelled; roll up and
    trim telemetry every minute."""
    telemetry = runtime.platform.telemetry
    await live.control.poll()
    await asyncio.gather(
        _every(tick_s, live.control.tick, "control tick"),
        _every(poll_s, live.control.poll, "fleet poll"),
        _every(60.0, lambda: asyncio.to_thread(telemetry.maintain), "telemetry maintenance"),
        _every(CLOCK_HEARTBEAT_S, lambda: asyncio.to_thread(publish_clock, runtime), "clock"),
    )


async def _every(period_s: float, action: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `action` every `period_s` (a slow run delays the next, never piles up)."""
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await action()
        except Exception:
            log.exception("%s failed", what)
        elapsed = asyncio.get_running_loop().time() - started
        if elapsed > period_s:
            log.warning("%s took %.2f s, longer than its period %.2f s", what, elapsed, period_s)
        await asyncio.sleep(max(0.0, period_s - elapsed))
