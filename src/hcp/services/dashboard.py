"""Dashboard page data: what the admin and customer dashboards, the fleet and billing pages show,
gathered through the ports so the routes stay thin.

Billing, the dispatch log and telemetry are services a platform may not have yet; a page part
that reads one is a `Section`, which says why it is empty when the service is absent or fails.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from hcp.billing import (
    DEFAULT_BILLING_SHEET,
    BillingPriceSheet,
    Invoice,
    PriceHistory,
    UsageRecord,
    build_invoice,
    parse_month,
    usage_csv,
)
from hcp.domain.catalog import ASIC_MODELS, GPU_MODELS
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import HcpError, NotFound
from hcp.domain.fleet import Device, Site
from hcp.domain.identity import Principal
from hcp.domain.market import MarketSnapshot
from hcp.domain.plans import GPU_OFF, GPU_SPOT, GPU_USES, SLEEP, SitePlan
from hcp.domain.status import UNREACHABLE
from hcp.domain.workloads import Workload, WorkloadState
from hcp.economics import snapshot_hashprice
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)
T = TypeVar("T")

CHART_WINDOW = timedelta(hours=24)
LAST_PLAN_HOLDS = timedelta(hours=1)
"""How long the newest plan counts past its start for profit (the loop may have stopped)."""
RECENT_WORKLOADS = 8
DISPATCH_ROWS = 12
DEVICE_WINDOWS = {
    "1h": (timedelta(hours=1), timedelta(seconds=30)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=20)),
}
"""Telemetry chart windows: (span, step). The last hour reads raw samples (steps under a
minute), so it shows the newest polls before any rollup has closed."""
DEVICE_METRICS: Mapping[DeviceKind, tuple[tuple[str, str, str], ...]] = {
    DeviceKind.ASIC: (
        ("power_w", "Power", "W"),
        ("hashrate_ths", "Hashrate", "TH/s"),
        ("temperature_c", "Temperature", "°C"),
    ),
    DeviceKind.GPU: (
        ("util_pct", "Utilisation", "%"),
        ("power_w", "Power", "W"),
        ("temperature_c", "Temperature", "°C"),
    ),
}


# --- the services this one reads when a platform has them ---------------------------------


class BillingSource(Protocol):
    def usage(self, principal: Principal, month: str) -> list[UsageRecord]: ...
    def invoices(self, principal: Principal) -> list[Invoice]: ...
    def invoice_csv(self, principal: Principal, invoice_id: str) -> str: ...


class DispatchLogSource(Protocol):
    def recent(self, limit: int) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Services that may be absent: None until they are wired into the platform."""

    billing: BillingSource | None = None
    dispatch_log: DispatchLogSource | None = None
    telemetry: object | None = None
    """Has `query(device_id, metric, start, end, step) -> points` or `series(...).points`."""


@dataclass(frozen=True, slots=True)
class Section(Generic[T]):
    """A page part read from an optional service: its `data`, or a `note` saying why none."""

    data: T | None = None
    note: str | None = None


def read_section(source: object | None, what: str, read: Callable[[], T]) -> Section[T]:
    """`read()` as a Section; a missing service or a failing read becomes a note, not a 500."""
    if source is None:
        return Section(note=f"{what} is not available on this platform yet.")
    try:
        return Section(read())
    except HcpError as exc:
        return Section(note=f"{what}: {exc}")
    except Exception as exc:  # one failing part must not take the whole page down
        log.exception("dashboard: reading %s failed", what)
        return Section(note=f"{what} could not be read ({type(exc).__name__}).")


# --- page data ----------------------------------------------------------------------------


class UseKind(StrEnum):
    MINING = "mining"
    GPU = "gpu"
    SPOT = "spot"
    CURTAILED = "curtailed"


@dataclass(frozen=True, slots=True, order=True)
class Use:
    """One use of site power: a miner model's profile, a GPU model's use, or curtailment."""

    kind_order: int
    label: str
    kind: UseKind = field(compare=False)


CURTAILED = Use(3, "curtailed", UseKind.CURTAILED)


@dataclass(frozen=True, slots=True)
class UseInterval:
    start: datetime
    end: datetime
    mw: Mapping[Use, float]


@dataclass(frozen=True, slots=True)
class PowerHistory:
    """Site MW (device power x PUE) by use over each plan's interval, and the site's limit."""

    uses: tuple[Use, ...]
    intervals: tuple[UseInterval, ...]
    capacity_mw: float


@dataclass(frozen=True, slots=True)
class Prices:
    at: datetime
    node: str
    electricity_usd_per_mwh: float
    btc_usd: float
    hashprice_usd_per_ths_day: float
    gpu_spot_usd_per_gpu_hour: float


@dataclass(frozen=True, slots=True)
class FleetRow:
    model: str
    kind: DeviceKind
    by_state: Mapping[str, int]
    unhealthy: int
    power_kw: float
    """What the devices that answered draw; `unreported` more draw what none can say."""
    hashrate_ths: float
    unreported: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


@dataclass(frozen=True, slots=True)
class DispatchAction:
    id: str
    device_id: str
    action: str
    profile: str | None
    reason: str
    status: str
    issued_at: datetime | None


@dataclass(frozen=True, slots=True)
class AdminOverview:
    now: datetime
    site: Site | None
    prices: Prices | None
    price_history: tuple[tuple[datetime, float], ...]
    profit_today_usd: float
    profit_month_usd: float
    power: PowerHistory
    fleet: tuple[FleetRow, ...]
    states: tuple[str, ...]
    plan: SitePlan | None
    queued: int
    gpus_busy: int
    gpus_total: int
    dispatch: Section[list[DispatchAction]]


@dataclass(frozen=True, slots=True)
class Spend:
    gpu_hours: Decimal
    usd: Decimal


@dataclass(frozen=True, slots=True)
class CustomerOverview:
    now: datetime
    month: str
    workloads: tuple[Workload, ...]
    by_state: Mapping[WorkloadState, int]
    gpus_held: int
    spend: Section[Spend]


@dataclass(frozen=True, slots=True)
class DeviceListing:
    devices: tuple[Device, ...]
    sites: tuple[str, ...]
    models: tuple[str, ...]
    states: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """One telemetry metric: per point (at, avg, min, max)."""

    metric: str
    label: str
    unit: str
    points: tuple[tuple[datetime, float, float, float], ...]
    window: tuple[datetime, datetime] | None = None
    """The [start, end) the points were read over (the chart's time axis)."""


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    device: Device
    window: str
    metrics: Section[list[MetricSeries]]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """A month's usage of one workload, summed over its intervals."""

    workload_id: str
    customer_id: str
    workload_class: str
    gpu_family: str
    tier: str
    gpu_hours: Decimal
    energy_kwh: Decimal


@dataclass(frozen=True, slots=True)
class UsageSummary:
    rows: list[UsageRow]
    charges: Spend


@dataclass(frozen=True, slots=True)
class BillingView:
    month: str
    usage: Section[UsageSummary]
    invoices: Section[list[Invoice]]


@dataclass(frozen=True, slots=True)
class PriceRow:
    workload_class: str
    gpu_family: str
    usd_per_gpu_hour: Decimal


# --- pure helpers -------------------------------------------------------------------------


def month_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def neighbour_months(month: str) -> tuple[str, str]:
    """The months before and after `month` ("YYYY-MM"); ValidationError for a bad month."""
    start, end = parse_month(month)
    return month_of(start - timedelta(days=1)), month_of(end)


def day_start(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date(), datetime.min.time(), UTC)


def use_of(device_model: str, use: str) -> Use:
    """The Use an allocation's power goes to: a GPU use of its model, else a mining profile."""
    if use == GPU_SPOT:
        return Use(2, f"{device_model} spot", UseKind.SPOT)
    if use in GPU_USES:
        return Use(1, f"{device_model} {use}", UseKind.GPU)
    return Use(0, f"{device_model} {use}", UseKind.MINING)


def full_power_kw(device_model: str) -> float:
    """A device's draw at work (an ASIC at stock, a GPU busy) in kW; 0 for unknown models."""
    if device_model in ASIC_MODELS:
        return ASIC_MODELS[device_model].stock.power_w / 1000
    if device_model in GPU_MODELS:
        return GPU_MODELS[device_model].busy_power_w / 1000
    return 0.0


def power_by_use(plan: SitePlan, site: Site) -> dict[Use, float]:
    """Site MW of each use in `plan` (device kW x PUE). Curtailed is what the sleeping miners and
    idle GPUs would draw at work, within the headroom the plan leaves under the site limit."""
    mw: dict[Use, float] = {}
    forgone_kw = 0.0
    for a in plan.allocations:
        if a.use in (SLEEP, GPU_OFF):
            forgone_kw += a.count * full_power_kw(a.device_model)
        elif a.count > 0:
            key = use_of(a.device_model, a.use)
            mw[key] = mw.get(key, 0.0) + a.power_kw * site.pue / 1000
    headroom = max(0.0, site.capacity_mw - sum(mw.values()))
    mw[CURTAILED] = min(forgone_kw * site.pue / 1000, headroom)
    return mw


def plan_spans(
    plans: Sequence[SitePlan], now: datetime
) -> list[tuple[SitePlan, datetime, datetime]]:
    """Each plan with the span it was in force: until the next plan, the newest until now
    (at most LAST_PLAN_HOLDS). `plans` oldest first."""
    spans = []
    for i, plan in enumerate(plans):
        if i + 1 < len(plans):
            end = plans[i + 1].interval_start
        else:
            end = min(now, plan.interval_start + LAST_PLAN_HOLDS)
        if end > plan.interval_start:
            spans.append((plan, plan.interval_start, end))
    return spans


def profit_usd(
    spans: Sequence[tuple[SitePlan, datetime, datetime]], start: datetime, end: datetime
) -> float:
    """Expected profit in USD over [start, end): each plan's rate (`expected_profit_usd`, USD
    per hour, as the planners state it) times the hours it was in force inside the window."""
    total = 0.0
    for plan, s, e in spans:
        overlap = (min(e, end) - max(s, start)).total_seconds()
        if overlap > 0:
            total += plan.expected_profit_usd * overlap / 3600
    return total


def power_history(plans: Sequence[SitePlan], site: Site, now: datetime) -> PowerHistory:
    """The MW-by-use chart data of `plans` (oldest first)."""
    intervals = [UseInterval(s, e, power_by_use(p, site)) for p, s, e in plan_spans(plans, now)]
    uses = sorted({u for i in intervals for u in i.mw})
    return PowerHistory(tuple(uses), tuple(intervals), site.capacity_mw)


def fleet_rows(devices: Sequence[Device]) -> tuple[tuple[FleetRow, ...], tuple[str, ...]]:
    """Devices per model: counts per state, unhealthy ones, power and hashrate; and the states.
    A device that did not answer counts no power, and is counted apart (`unreported`): a miner
    cut off from the network may well still hash."""
    by_model: dict[str, list[Device]] = {}
    for d in devices:
        by_model.setdefault(d.model_name, []).append(d)
    rows = tuple(
        FleetRow(
            model,
            group[0].kind,
            dict(Counter(d.state for d in group)),
            sum(not d.healthy for d in group),
            sum(d.power_w for d in group) / 1000,
            sum(d.hashrate_ths for d in group),
            sum(d.state == UNREACHABLE for d in group),
        )
        for model, group in sorted(by_model.items(), key=lambda kv: (kv[1][0].kind, kv[0]))
    )
    return rows, tuple(sorted({d.state for d in devices}))


def dispatch_action(item: Any) -> DispatchAction:
    """A dispatch log entry as a row: a command (id, device_id, action, profile, reason,
    issued_at, status) or a record holding `command` and an `outcome` with a `status`."""
    command = getattr(item, "command", item)
    outcome = getattr(item, "outcome", None)
    status = getattr(outcome, "status", None) or getattr(item, "status", None)
    return DispatchAction(
        id=str(getattr(command, "id", "")),
        device_id=str(getattr(command, "device_id", "")),
        action=str(getattr(command, "action", "")),
        profile=getattr(command, "profile", None),
        reason=str(getattr(command, "reason", "")),
        status=str(status or "sent"),
        issued_at=getattr(command, "issued_at", None),
    )


def usage_rows(records: Sequence[UsageRecord]) -> list[UsageRow]:
    """Usage records summed per workload (and tier), most GPU-hours first."""
    rows: dict[tuple[str, str], UsageRow] = {}
    for r in records:
        key = (r.workload_id, r.tier.value)
        old = rows.get(key)
        hours = r.gpu_hours + (old.gpu_hours if old else Decimal(0))
        kwh = r.energy_kwh + (old.energy_kwh if old else Decimal(0))
        rows[key] = UsageRow(
            r.workload_id,
            r.customer_id,
            r.workload_class.value,
            r.gpu_family,
            r.tier.value,
            hours,
            kwh,
        )
    return sorted(rows.values(), key=lambda row: row.gpu_hours, reverse=True)


def charges(
    records: Sequence[UsageRecord],
    month: str,
    sheet: BillingPriceSheet | PriceHistory,
    max_prices: Mapping[str, Decimal] | None = None,
) -> Spend:
    """GPU-hours and what they cost so far in `month`, priced as the invoices will be (each
    workload at most its max price per GPU-hour, from `max_prices` by workload id)."""
    customers = sorted({r.customer_id for r in records})
    usd = sum(
        (
            build_invoice(
                c, month, [r for r in records if r.customer_id == c], sheet, max_prices
            ).total
            for c in customers
        ),
        Decimal(0),
    )
    return Spend(sum((r.gpu_hours for r in records), Decimal(0)), usd)


def telemetry_points(
    telemetry: object, device_id: str, metric: str, start: datetime, end: datetime, step: timedelta
) -> tuple[tuple[datetime, float, float, float], ...]:
    """(at, avg, min, max) per step from a telemetry service with `query` or `series`."""
    query = getattr(telemetry, "query", None)
    if query is not None:
        points = query(device_id, metric, start, end, step)
    else:
        points = telemetry.series(device_id, metric, start, end, step).points  # type: ignore[attr-defined]
    return tuple((p.at, float(p.avg), float(p.min), float(p.max)) for p in points)


def prices_of(snapshot: MarketSnapshot, site: Site) -> Prices:
    return Prices(
        snapshot.at,
        site.node,
        snapshot.electricity(site.node),
        snapshot.btc_usd,
        snapshot_hashprice(snapshot),
        snapshot.gpu_spot("H100"),
    )


# --- the service --------------------------------------------------------------------------


class DashboardService:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, *, secure_cookies: bool = False
    ) -> None:
        self._uow = uow
        self._clock = clock
        self.secure_cookies = secure_cookies
        """Session cookies only over HTTPS (production)."""
        self._closed_days: dict[tuple[str, date], float] = {}

    def now(self) -> datetime:
        return self._clock.now()

    def admin(self, sources: Sources) -> AdminOverview:
        """The site overview: prices, profit, MW by use, fleet, plan, queue, dispatch."""
        now = self._clock.now()
        with self._uow() as uow:
            sites = uow.fleet.sites()
            site = sites[0] if sites else None
            plans = uow.plans.recent(site.id, now - CHART_WINDOW) if site else []
            month_usd = self._month_profit(uow, site, now) if site else 0.0
            snapshots = uow.market.recent(now - CHART_WINDOW)
            devices = uow.fleet.devices(site_id=site.id if site else None)
            queued = sum(uow.workloads.queued_by_priority().values())
            busy = uow.workloads.gpus_in_use()
        # Nothing from ahead of now: a sped-up run before may have stored days beyond the wall
        # clock that a run on devices elsewhere keeps to (as `FleetService.current_plan`).
        plans = [p for p in plans if p.interval_start <= now]
        snapshots = [s for s in snapshots if s.at <= now]
        today_usd = profit_usd(plan_spans(plans, now), day_start(now), now)
        rows, states = fleet_rows(devices)
        return AdminOverview(
            now=now,
            site=site,
            prices=prices_of(snapshots[-1], site) if snapshots and site else None,
            price_history=_price_history(snapshots, site),
            profit_today_usd=today_usd,
            profit_month_usd=month_usd + today_usd,
            power=power_history(plans, site, now) if site else PowerHistory((), (), 0.0),
            fleet=rows,
            states=states,
            plan=plans[-1] if plans else None,
            queued=queued,
            gpus_busy=busy,
            gpus_total=sum(d.kind is DeviceKind.GPU for d in devices),
            dispatch=read_section(
                sources.dispatch_log, "The dispatch log", lambda: self._dispatch(sources)
            ),
        )

    def _month_profit(self, uow: UnitOfWork, site: Site, now: datetime) -> float:
        """Expected profit of this month's days before today; closed days are kept, not re-read."""
        today = now.astimezone(UTC).date()
        days = [today.replace(day=d) for d in range(1, today.day)]
        missing = [d for d in days if (site.id, d) not in self._closed_days]
        if missing:
            first = datetime.combine(missing[0], datetime.min.time(), UTC)
            spans = plan_spans(uow.plans.recent(site.id, first), now)
            for d in missing:
                start = datetime.combine(d, datetime.min.time(), UTC)
                self._closed_days[(site.id, d)] = profit_usd(spans, start, start + timedelta(1))
        return sum(self._closed_days[(site.id, d)] for d in days)

    def _dispatch(self, sources: Sources) -> list[DispatchAction]:
        assert sources.dispatch_log is not None
        return [dispatch_action(item) for item in sources.dispatch_log.recent(DISPATCH_ROWS)]

    def customer(self, principal: Principal, sources: Sources) -> CustomerOverview:
        """A customer's own workloads, the GPUs they hold, and this month's GPU-hours and spend."""
        now = self._clock.now()
        mine = principal.customer_id
        with self._uow() as uow:
            recent = uow.workloads.find(
                customer_id=mine, state=None, limit=RECENT_WORKLOADS, offset=0
            )
            by_state = {s: uow.workloads.count(customer_id=mine, state=s) for s in WorkloadState}
            active = uow.workloads.in_states([WorkloadState.SCHEDULED, WorkloadState.RUNNING])
        held = sum(w.requirements.gpu_count for w in active if w.customer_id == mine)
        month = month_of(now)
        spend = read_section(
            sources.billing, "Billing", lambda: self._charges(principal, month, sources)
        )
        return CustomerOverview(now, month, tuple(recent), by_state, held, spend)

    def _charges(self, principal: Principal, month: str, sources: Sources) -> Spend:
        assert sources.billing is not None
        records = sources.billing.usage(principal, month)
        return charges(records, month, self.history(sources), self.max_prices(records, sources))

    def sheet(self, sources: Sources) -> BillingPriceSheet:
        """The billing service's price sheet, or the default one it starts with."""
        sheet = getattr(sources.billing, "sheet", None)
        return sheet if isinstance(sheet, BillingPriceSheet) else DEFAULT_BILLING_SHEET

    @staticmethod
    def max_prices(records: Sequence[UsageRecord], sources: Sources) -> Mapping[str, Decimal]:
        """The max prices per GPU-hour of the workloads in `records` that have one, as the
        invoices cap them (none where the billing service does not know them)."""
        read = getattr(sources.billing, "max_prices", None)
        if read is None or not records:
            return {}
        found: Mapping[str, Decimal] = read(sorted({r.workload_id for r in records}))
        return found

    def history(self, sources: Sources) -> BillingPriceSheet | PriceHistory:
        """The billing service's prices over time (what usage is priced at), or the default
        sheet it starts with."""
        history = getattr(sources.billing, "history", None)
        return history if isinstance(history, PriceHistory) else self.sheet(sources)

    def price_rows(self, sources: Sources) -> list[PriceRow]:
        """The standard list price of every class and GPU family, USD per GPU-hour."""
        sheet = self.sheet(sources)
        return [
            PriceRow(workload_class.value, family, price)
            for workload_class, by_family in sheet.usd_per_gpu_hour.items()
            for family, price in sorted(by_family.items())
        ]

    def devices(self, site_id: str | None, model: str | None, state: str | None) -> DeviceListing:
        """Devices filtered by site, model and state, with every value each filter may take."""
        with self._uow() as uow:
            everything = uow.fleet.devices()
        chosen = [
            d
            for d in everything
            if (site_id is None or d.site_id == site_id)
            and (model is None or d.model_name == model)
            and (state is None or d.state == state)
        ]
        return DeviceListing(
            tuple(chosen),
            tuple(sorted({d.site_id for d in everything})),
            tuple(sorted({d.model_name for d in everything})),
            tuple(sorted({d.state for d in everything})),
        )

    def device(self, device_id: str, window: str, sources: Sources) -> DeviceDetail:
        """One device and its telemetry over `window` (1h, 6h or 24h; default 1h)."""
        with self._uow() as uow:
            found = [d for d in uow.fleet.devices() if d.id == device_id]
        if not found:
            raise NotFound("device", device_id)
        device = found[0]
        window = window if window in DEVICE_WINDOWS else "1h"
        metrics = read_section(
            sources.telemetry,
            "Telemetry",
            lambda: self._metrics(device, *DEVICE_WINDOWS[window], sources.telemetry),
        )
        return DeviceDetail(device, window, metrics)

    def _metrics(
        self, device: Device, span: timedelta, step: timedelta, telemetry: object
    ) -> list[MetricSeries]:
        end = self._clock.now()
        return [
            MetricSeries(
                metric,
                label,
                unit,
                telemetry_points(telemetry, device.id, metric, end - span, end, step),
                (end - span, end),
            )
            for metric, label, unit in DEVICE_METRICS[device.kind]
        ]

    def billing(self, principal: Principal, month: str, sources: Sources) -> BillingView:
        """A month's usage per workload with its charges so far, and the issued invoices."""
        parse_month(month)  # a bad month is the caller's mistake, named before any read
        return BillingView(
            month,
            read_section(sources.billing, "Usage", lambda: self._usage(principal, month, sources)),
            read_section(sources.billing, "Invoices", lambda: self._invoices(principal, sources)),
        )

    def usage_csv(self, principal: Principal, month: str, sources: Sources) -> str:
        """The month's usage records as CSV; NotFound where billing is not wired in."""
        parse_month(month)
        if sources.billing is None:
            raise NotFound("usage export", month)
        return usage_csv(sources.billing.usage(principal, month))

    def invoice_csv(self, principal: Principal, invoice_id: str, sources: Sources) -> str:
        """One invoice as CSV; NotFound where billing is not wired in or the invoice is not
        the caller's."""
        if sources.billing is None:
            raise NotFound("invoice", invoice_id)
        return sources.billing.invoice_csv(principal, invoice_id)

    def _usage(self, principal: Principal, month: str, sources: Sources) -> UsageSummary:
        assert sources.billing is not None
        records = sources.billing.usage(principal, month)
        spend = charges(records, month, self.history(sources), self.max_prices(records, sources))
        return UsageSummary(usage_rows(records), spend)

    def _invoices(self, principal: Principal, sources: Sources) -> list[Invoice]:
        assert sources.billing is not None
        return sources.billing.invoices(principal)


def _price_history(
    snapshots: Sequence[MarketSnapshot], site: Site | None
) -> tuple[tuple[datetime, float], ...]:
    if site is None:
        return ()
    return tuple(
        (s.at, s.electricity_usd_per_mwh[site.node])
        for s in snapshots
        if site.node in s.electricity_usd_per_mwh
    )
