"""The billing price sheet: Decimal USD per GPU-hour by class and GPU family, in two tiers.

The standard tier is the list price of the class. The interruptible tier (the workload may be
paused whenever power is dear) is priced each interval off the real-time electricity price; see
`interruptible_price`.

Energy is not a line of its own. A GPU-hour's price includes the power it draws, as every GPU
cloud sells it, and the interruptible tier already moves with the real-time power price: a
pass-through energy line would charge the same kWh twice. Metered kWh stay on the usage records
and in the CSV export, for the customer to see and for cost accounting.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from hcp.billing.rounding import exact_arithmetic, round_price, to_decimal
from hcp.domain.catalog import GPU_MODELS
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass
from hcp.economics.gpu import DEFAULT_PRICE_SHEET, GpuPriceSheet

KWH_PER_MWH = Decimal(1000)


class Tier(StrEnum):
    """How a customer buys GPU-hours: at the list price, or cheaper but interruptible."""

    STANDARD = "standard"
    INTERRUPTIBLE = "interruptible"


@dataclass(frozen=True, slots=True)
class InterruptibleTerms:
    """The knobs of the interruptible price (see `interruptible_price`).

    `base_share` of the list price is always charged (it pays for the hardware); the energy the
    GPU-hour buys at the real-time price is passed on times `energy_markup`; `pue` scales the
    GPU's board power up to what the site draws from the grid.
    """

    base_share: Decimal = Decimal("0.5")
    energy_markup: Decimal = Decimal("1.25")
    pue: Decimal = Decimal("1.2")

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.base_share <= Decimal(1):
            raise ValidationError("base_share", f"must be within [0, 1], got {self.base_share}")
        if self.energy_markup < 1:
            raise ValidationError("energy_markup", f"must be at least 1, got {self.energy_markup}")
        if self.pue < 1:
            raise ValidationError("pue", f"must be at least 1, got {self.pue}")


def interruptible_price(
    list_price_usd_per_gpu_hour: Decimal,
    rt_price_usd_per_mwh: Decimal | float,
    gpu_power_kw: Decimal,
    terms: InterruptibleTerms = InterruptibleTerms(),
) -> Decimal:
    """Interruptible price in USD per GPU-hour for an interval whose real-time electricity price
    is `rt_price_usd_per_mwh`, rounded to 0.0001 USD:

        energy = gpu_power_kw × pue × max(rt, 0) / 1000          (USD per GPU-hour)
        price  = min(list, list × base_share + energy × energy_markup)

    The discount on the list price is largest when power is free or negative (the price is then
    `list × base_share`: a negative price is the site's gain, not a refund) and shrinks as power
    gets dearer, until the price reaches the list price; it never exceeds it. Past that point
    (about $1,300/MWh for an H100 at the defaults) an interruptible GPU-hour earns less than it
    costs, which is why such workloads are the first paused when prices spike.

    Worked example, batch inference on an H100 (list 2.75, 0.7 kW) at the default terms
    (base_share 0.5, energy_markup 1.25, pue 1.2):
    - rt $40/MWh: energy = 0.7 × 1.2 × 40 / 1000 = 0.0336; price = 1.375 + 0.042 = 1.4170;
    - rt −$20/MWh: energy = 0; price = 1.3750;
    - rt $2,000/MWh: energy = 1.68; 1.375 + 2.1 = 3.475 > 2.75, so price = 2.7500.
    """
    rt = to_decimal(rt_price_usd_per_mwh, "rt_price_usd_per_mwh")
    with exact_arithmetic():
        energy = gpu_power_kw * terms.pue * max(rt, Decimal(0)) / KWH_PER_MWH
        floor = list_price_usd_per_gpu_hour * terms.base_share
        price = min(list_price_usd_per_gpu_hour, floor + energy * terms.energy_markup)
        return round_price(price)


def catalog_gpu_power_kw() -> Mapping[str, Decimal]:
    """Busy power in kW of each catalog GPU family's flagship (its first model listed)."""
    power: dict[str, Decimal] = {}
    for model in GPU_MODELS.values():
        power.setdefault(model.family, Decimal(str(model.busy_power_w)) / KWH_PER_MWH)
    return MappingProxyType(power)


@dataclass(frozen=True, slots=True)
class BillingPriceSheet:
    """List prices in USD per GPU-hour by class and GPU family (at most 4 decimal places),
    the busy power per family in kW that prices its energy, and the interruptible terms."""

    usd_per_gpu_hour: Mapping[WorkloadClass, Mapping[str, Decimal]]
    gpu_power_kw: Mapping[str, Decimal] = field(default_factory=catalog_gpu_power_kw)
    interruptible: InterruptibleTerms = InterruptibleTerms()

    def __post_init__(self) -> None:
        for workload_class, by_family in self.usd_per_gpu_hour.items():
            for family, price in by_family.items():
                _check_list_price(f"usd_per_gpu_hour.{workload_class.value}.{family}", price)

    @classmethod
    def from_economics(
        cls,
        sheet: GpuPriceSheet,
        *,
        gpu_power_kw: Mapping[str, Decimal] | None = None,
        interruptible: InterruptibleTerms = InterruptibleTerms(),
    ) -> BillingPriceSheet:
        """The optimizer's float list prices as Decimals (via `str`: 4.0 becomes 4.0, exactly)."""
        prices = {
            workload_class: MappingProxyType(
                {family: Decimal(str(price)) for family, price in by_family.items()}
            )
            for workload_class, by_family in sheet.usd_per_gpu_hour.items()
        }
        power = (
            catalog_gpu_power_kw() if gpu_power_kw is None else MappingProxyType(dict(gpu_power_kw))
        )
        return cls(MappingProxyType(prices), power, interruptible)

    def list_price(self, workload_class: WorkloadClass, family: str) -> Decimal:
        """The standard price in USD per GPU-hour; ValidationError names an unpriced family."""
        by_family = self.usd_per_gpu_hour.get(workload_class, {})
        if family not in by_family:
            known = ", ".join(sorted(by_family)) or "none"
            message = f"no {workload_class.value} price for {family!r} (known: {known})"
            raise ValidationError("gpu_family", message)
        return by_family[family]

    def gpu_hour_price(
        self,
        workload_class: WorkloadClass,
        family: str,
        tier: Tier,
        rt_price_usd_per_mwh: Decimal | None = None,
    ) -> Decimal:
        """The price in USD of one GPU-hour in `tier`; interruptible needs the interval's
        real-time price (ValidationError without one) and the family's power."""
        price = self.list_price(workload_class, family)
        if tier is Tier.STANDARD:
            return price
        if rt_price_usd_per_mwh is None:
            raise ValidationError("rt_price_usd_per_mwh", "the interruptible tier needs one")
        if family not in self.gpu_power_kw:
            raise ValidationError("gpu_family", f"no power figure for {family!r}")
        power = self.gpu_power_kw[family]
        return interruptible_price(price, rt_price_usd_per_mwh, power, self.interruptible)


def _check_list_price(where: str, price: Decimal) -> None:
    if not price.is_finite() or price < 0:
        raise ValidationError(where, f"must be a finite price >= 0, got {price}")
    if price != round_price(price):
        raise ValidationError(where, f"has more than 4 decimal places: {price}")


DEFAULT_BILLING_SHEET = BillingPriceSheet.from_economics(DEFAULT_PRICE_SHEET)


PriceChange = tuple[datetime, WorkloadClass, str, Decimal]
"""An admin's list price from an instant on: (effective from, class, GPU family, USD/GPU-hour)."""


class PriceHistory:
    """The list price sheet over time: `default` with each change in force from its instant
    on. Usage is priced at the sheet in force when it ran, so a price change never reprices
    what came before it, and an invoice rebuilt later comes out the same."""

    def __init__(self, default: BillingPriceSheet, changes: Iterable[PriceChange] = ()) -> None:
        ordered = sorted(changes, key=lambda change: change[0])
        self._starts: list[datetime] = []
        self._sheets: list[BillingPriceSheet] = [default]
        prices = {c: dict(by_family) for c, by_family in default.usd_per_gpu_hour.items()}
        for at, workload_class, family, usd in ordered:
            prices.setdefault(workload_class, {})[family] = usd
            sheet = replace(default, usd_per_gpu_hour={c: dict(f) for c, f in prices.items()})
            if self._starts and self._starts[-1] == at:
                self._sheets[-1] = sheet
            else:
                self._starts.append(at)
                self._sheets.append(sheet)

    def at(self, when: datetime) -> BillingPriceSheet:
        """The sheet in force at `when`."""
        return self._sheets[bisect_right(self._starts, when)]

    def changes_between(self, start: datetime, end: datetime) -> list[datetime]:
        """The instants in (start, end) at which another sheet comes into force."""
        return [at for at in self._starts if start < at < end]

    @property
    def current(self) -> BillingPriceSheet:
        """The sheet with every change made so far."""
        return self._sheets[-1]
