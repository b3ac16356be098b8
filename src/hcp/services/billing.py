"""Billing use cases: meter each control interval into stored usage, build invoices from it,
and show customers their own usage and invoices only."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Protocol

from hcp.billing import (
    DEFAULT_BILLING_SHEET,
    BillingPriceSheet,
    Invoice,
    PowerSample,
    PriceHistory,
    Run,
    Tier,
    UsageRecord,
    build_invoice,
    invoice_csv,
    invoice_id,
    is_final,
    meter_interval,
    month_of,
    month_pieces,
    parse_month,
    usage_csv,
)
from hcp.domain.catalog import gpu_families, gpu_model
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import Conflict, Forbidden, NotFound, ValidationError
from hcp.domain.fleet import Device
from hcp.domain.identity import Principal
from hcp.domain.workloads import StateChange, Workload, WorkloadClass, WorkloadEvent
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

_RUN_ENDS = frozenset(
    {WorkloadEvent.PREEMPT, WorkloadEvent.COMPLETE, WorkloadEvent.FAIL, WorkloadEvent.CANCEL}
)
DEFAULT_FAMILY = "H100"


def runs_of(
    w: Workload,
    history: Sequence[StateChange],
    gpu_models: Mapping[str, str],
    site_families: Mapping[str, Collection[str]] | None = None,
    since: datetime | None = None,
) -> list[Run]:
    """Each stretch `w` held GPUs: from a START to the next PREEMPT, COMPLETE, FAIL or CANCEL,
    on the GPUs that START recorded and at their family (see `family_of`). Runs ended by
    `since` are left out (an interval metered from `since` holds none of them)."""
    runs: list[Run] = []
    started: StateChange | None = None
    for change in history:
        if change.event is WorkloadEvent.START:
            started = change
        elif change.event in _RUN_ENDS and started is not None:
            if change.at < started.at:
                # Platform time went back (a restart after a sped-up run): nothing to bill.
                span = f"from {started.at.isoformat()} to {change.at.isoformat()}"
                log.warning("workload %s: a run %s ends before it starts; not billed", w.id, span)
            elif since is None or change.at > since:
                runs.append(_run(w, started, change.at, gpu_models, site_families))
            started = None
    if started is not None:
        runs.append(_run(w, started, None, gpu_models, site_families))
    return runs


def _run(
    w: Workload,
    start: StateChange,
    stop: datetime | None,
    gpu_models: Mapping[str, str],
    site_families: Mapping[str, Collection[str]] | None,
) -> Run:
    tier = Tier.INTERRUPTIBLE if w.interruptible else Tier.STANDARD
    family = family_of(w, start.gpu_ids, gpu_models, site_families, start.at)
    # A start stored before runs recorded their GPUs: as many stand-ins, metered at catalog power.
    gpu_ids = start.gpu_ids or tuple(f"{w.id}/{i}" for i in range(w.requirements.gpu_count))
    return Run(w.id, w.customer_id, w.workload_class, family, gpu_ids, start.at, stop, tier)


def family_of(
    w: Workload,
    gpu_ids: Sequence[str],
    gpu_models: Mapping[str, str],
    site_families: Mapping[str, Collection[str]] | None = None,
    started_at: datetime | None = None,
) -> str:
    """The GPU family a run of `w` on `gpu_ids` is billed at: the one `w` asked for, else that
    of the GPUs the run held (`gpu_models`, the fleet's GPUs' model names, released ones too).
    Only when the fleet knows none of them (a device deleted, or a run stored before runs
    recorded their GPUs) is it the one family `w`'s site hosts (in `site_families`), else
    DEFAULT_FAMILY: a guess, logged as a warning."""
    if w.requirements.gpu_type:
        return w.requirements.gpu_type
    held = [gpu_models[g] for g in gpu_ids if g in gpu_models]
    if held:
        return gpu_model(held[0]).family
    hosted = (site_families or {}).get(w.site_id or "", ())
    family = next(iter(hosted)) if len(hosted) == 1 else DEFAULT_FAMILY
    run = "" if started_at is None else f" started {started_at.isoformat()}"
    gpus = ", ".join(gpu_ids) if gpu_ids else "its GPUs were not recorded"
    log.warning(
        "workload %s: the fleet knows no GPU of its run%s (%s); billed at %s, a guess",
        w.id,
        run,
        gpus,
        family,
    )
    return family


def families_by_site(gpus: Iterable[Device]) -> dict[str, frozenset[str]]:
    """The GPU families each site hosts."""
    found: dict[str, set[str]] = {}
    for d in gpus:
        found.setdefault(d.site_id, set()).add(gpu_model(d.model_name).family)
    return {site: frozenset(families) for site, families in found.items()}


def _family_changes(runs: Sequence[Run]) -> list[datetime]:
    """The instants a workload's run starts on another GPU family than its run before (a
    workload's runs come in order): a usage record is of one family, so an interval holding
    both runs is cut there, and each part billed at its own family."""
    return [
        after.started_at
        for before, after in pairwise(runs)
        if before.workload_id == after.workload_id and before.gpu_family != after.gpu_family
    ]


def _possible(sample: PowerSample) -> bool:
    return math.isfinite(sample.power_w) and sample.power_w >= 0


def _ended_before(run: Run, at: datetime) -> bool:
    return run.stopped_at is not None and run.stopped_at < at


class PowerSource(Protocol):
    def power_samples(
        self, device_ids: Sequence[str], start: datetime, end: datetime
    ) -> Mapping[str, Sequence[PowerSample]]:
        """Wall-power readings (W) of each device in [start, end)."""
        ...


# Readings are held until the next one: the one just before an interval covers its start.
LOOK_BACK = timedelta(minutes=2)


class BillingService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        sheet: BillingPriceSheet = DEFAULT_BILLING_SHEET,
        power: PowerSource | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._default_sheet = sheet
        self._power = power

    @property
    def sheet(self) -> BillingPriceSheet:
        """The default price sheet with the prices admins have set over it."""
        return self.history.current

    @property
    def history(self) -> PriceHistory:
        """The price sheet over time: usage is priced at the sheet in force when it ran."""
        with self._uow() as uow:
            changes = uow.billing.price_changes()
        return PriceHistory(
            self._default_sheet,
            ((at, WorkloadClass(c), family, usd) for at, c, family, usd in changes),
        )

    def set_price(
        self, principal: Principal, workload_class: WorkloadClass, family: str, usd: Decimal
    ) -> BillingPriceSheet:
        """Set one list price (admins only), in force from now on: usage before it keeps the
        price it ran at."""
        if not principal.manages_users:
            raise Forbidden("only an admin may change the price sheet")
        if family not in gpu_families():
            known = ", ".join(sorted(gpu_families()))
            raise ValidationError("gpu_type", f"unknown GPU family {family!r} (known: {known})")
        with self._uow() as uow:
            uow.billing.set_price(workload_class.value, family, usd, self._clock.now())
            uow.commit()
        return self.sheet

    def meter(
        self,
        start: datetime,
        end: datetime,
        rt_price_usd_per_mwh: float | None,
        vouched: Collection[str] | None = None,
    ) -> int:
        """Store the usage of every workload that held GPUs in [start, end); how many records
        were new (metering the same interval again adds nothing). Records end at month starts
        and at price changes, so each is priced at the sheet in force for all of its time,
        and where a workload's run starts on another GPU family than its run before.

        With `vouched`, a run the store holds no end for before `end` is billed only for the
        workloads in it (their nodes vouch that it ran on); a run stored as ended before then
        is billed up to its end either way, as the platform recorded it while it watched."""
        price_changes = self.history.changes_between(start, end)
        with self._uow() as uow:
            gpus = uow.fleet.devices(kind=DeviceKind.GPU)
            # Every GPU of the fleet: a run that ended released its GPUs, still in the fleet.
            gpu_models = {d.id: d.model_name for d in gpus}
            site_families = families_by_site(gpus)
            touched = uow.workloads.touched_since(start)
            histories = uow.workloads.histories([w.id for w in touched])
            runs = [
                run
                for w in touched
                for run in runs_of(w, histories[w.id], gpu_models, site_families, since=start)
                if vouched is None or w.id in vouched or _ended_before(run, end)
            ]
            price = (
                None
                if rt_price_usd_per_mwh is None
                else Decimal(str(round(rt_price_usd_per_mwh, 6)))
            )
            samples = self._samples(runs, start, end)
            cuts = [*price_changes, *_family_changes(runs)]
            records = [
                record
                for piece_start, piece_end in month_pieces(start, end, cuts)
                for record in meter_interval(
                    runs, piece_start, piece_end, samples, rt_price_usd_per_mwh=price
                )
            ]
            new = uow.billing.add_usage(records)
            uow.commit()
        return new

    def _samples(
        self, runs: Sequence[Run], start: datetime, end: datetime
    ) -> Mapping[str, Sequence[PowerSample]]:
        """Telemetry of the GPUs that ran; a GPU without any is metered at catalog power."""
        if self._power is None or not runs:
            return {}
        gpu_ids = sorted({g for run in runs for g in run.gpu_ids})
        found = self._power.power_samples(gpu_ids, start - LOOK_BACK, end)
        # A reading no power can have (a device's glitch) is left out, not trusted: raising on
        # it would stop every workload's metering, each tick while it is in the window.
        usable = {g: [s for s in samples if _possible(s)] for g, samples in found.items()}
        dropped = sum(len(found[g]) - len(usable[g]) for g in found)
        if dropped:
            log.warning("metering: %d impossible GPU power readings left out", dropped)
        return usable

    def usage(
        self, principal: Principal, month: str, customer_id: str | None = None
    ) -> list[UsageRecord]:
        """A month's usage: the caller's own for a customer, anyone's (or one's) for staff."""
        start, end = parse_month(month)
        scope = self._scope(principal, customer_id)
        with self._uow() as uow:
            if scope is not None and uow.customers.get(scope) is None:
                raise NotFound("customer", scope)  # a mistyped id is not a customer at rest
            return uow.billing.usage(start, end, scope)

    def max_prices(self, workload_ids: Sequence[str]) -> dict[str, Decimal]:
        """The most each of these workloads' customers agreed to pay per GPU-hour, by workload
        id (those without a max are left out): invoices bill no GPU-hour above it."""
        with self._uow() as uow:
            return uow.workloads.max_prices(workload_ids)

    def usage_csv(self, principal: Principal, month: str, customer_id: str | None = None) -> str:
        return usage_csv(self.usage(principal, month, customer_id))

    def issue(self, customer_id: str, month: str) -> Invoice:
        """Build one customer's invoice for `month` from stored usage and store it: the month's
        own usage, and late usage (see `_late_usage`). A final invoice stored is returned as it
        is, never rebuilt; a provisional one is rebuilt (identically from the same usage) or,
        once the month has ended, replaced by the final one. A final invoice marks the usage
        it bills, so usage of its month metered after it is told apart: late usage."""
        start, end = parse_month(month)
        sheet = self.history
        with self._uow() as uow:
            stored = uow.billing.invoice(invoice_id(customer_id, month))
            if stored is not None and stored.final:
                return stored
            usage = uow.billing.usage(start, end, customer_id)
            late = _late_usage(uow, month, customer_id)
            max_prices = uow.workloads.max_prices([r.workload_id for r in (*usage, *late)])
            now = self._clock.now()
            built = build_invoice(customer_id, month, usage, sheet, max_prices, late)
            invoice = replace(built, issued_at=now)
            kept = uow.billing.save_invoice(invoice, now)
            if kept is not None:  # an issue racing this one stored the final invoice first
                return kept
            if invoice.final:
                _mark_billed(uow, invoice, [*usage, *late])
            uow.commit()
        return invoice

    def issue_all(self, month: str) -> list[Invoice]:
        """Invoices for every customer with usage in `month`, late usage to bill on it, or an
        invoice for it stored (a final one is returned as it is)."""
        start, end = parse_month(month)
        with self._uow() as uow:
            customers = {r.customer_id for r in uow.billing.usage(start, end)}
            customers |= {r.customer_id for r in _late_usage(uow, month)}
            customers |= {c for c, m, _ in uow.billing.issue_dates() if m == month}
        return [self.issue(c, month) for c in sorted(customers)]

    def invoices(self, principal: Principal) -> list[Invoice]:
        with self._uow() as uow:
            return uow.billing.invoices(self._scope(principal, None))

    def invoice(self, principal: Principal, invoice_id: str) -> Invoice:
        """One invoice; NotFound also when it is another customer's."""
        with self._uow() as uow:
            found = uow.billing.invoice(invoice_id)
        if found is None or not principal.may_see(found.customer_id):
            raise NotFound("invoice", invoice_id)
        return found

    def invoice_csv(self, principal: Principal, invoice_id: str) -> str:
        return invoice_csv(self.invoice(principal, invoice_id))

    @staticmethod
    def _scope(principal: Principal, customer_id: str | None) -> str | None:
        """Whose records the caller reads: staff, `customer_id`'s (None: everyone's); a
        customer, its own. A customer naming another customer is told there is none such, as
        for another's invoice, rather than handed its own records under another's name."""
        if principal.role.sees_everything:
            return customer_id
        if customer_id is not None and customer_id != principal.customer_id:
            raise NotFound("customer", customer_id)
        return principal.customer_id


def _late_usage(uow: UnitOfWork, month: str, customer_id: str | None = None) -> list[UsageRecord]:
    """Usage of a month before `month` that has a final invoice for its customer but is
    not billed on it, having been metered after it (of `customer_id`, or everyone's): an
    invoice for `month` bills it, and the first final one marks it billed."""
    finals = {
        (c, m)
        for c, m, issued_at in uow.billing.issue_dates(customer_id)
        if m < month and is_final(m, issued_at)
    }
    if not finals:
        return []
    first = parse_month(min(m for _, m in finals))[0]
    unbilled = uow.billing.unbilled_usage(first, parse_month(month)[0], customer_id)
    return [r for r in unbilled if (r.customer_id, month_of(r.interval_start)) in finals]


def _mark_billed(uow: UnitOfWork, invoice: Invoice, billed: Sequence[UsageRecord]) -> None:
    """Mark the usage a final invoice bills, month by month, as billed on it. The records of
    a month marked must be those it was built from: had one been stored, or billed on another
    invoice, since they were read, the invoice is not stored (Conflict), and issuing it again
    builds it from what is stored then."""
    counts = Counter({invoice.month: 0})  # its own month's usage metered meanwhile is caught
    counts.update(month_of(r.interval_start) for r in billed)
    for month, count in sorted(counts.items()):
        marked = uow.billing.bill_usage(invoice.id, invoice.customer_id, *parse_month(month))
        if marked != count:
            raise Conflict(
                f"{invoice.customer_id}'s usage of {month} changed while {invoice.id} was being "
                "issued (metered, or billed on another invoice); issue it again"
            )
