"""Backtest scenarios: the TOML format (docs/scenario-format.md) parsed into a `Scenario`.

Errors are `DataError`s naming the file, the line and the dotted key (`sites[0].pue`).
Paths in the file are relative to the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from hcp.adapters.market.ercot import DEFAULT_POINT_TYPE
from hcp.adapters.market.gpu_spot import GpuSpotCsv
from hcp.adapters.market.simulated import MarketSimulatorConfig
from hcp.backtest.demand import DemandSpec, JobArrivals, RealtimeProfile
from hcp.domain.catalog import ASIC_MODELS, GPU_MODELS, gpu_families
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass
from hcp.economics import DEFAULT_POOL_FEE, DEFAULT_PRICE_SHEET
from hcp.optimizer.inputs import (
    AsicFleet,
    Contract,
    GpuFleet,
    PpaContract,
    RtContract,
    SiteSpec,
    grid_mw,
    steps_covering,
)
from hcp.optimizer.strategies import Terms
from hcp.tomlfile import TomlTable, load_toml

_BATCH, _TRAINING = WorkloadClass.AI_INFERENCE_BATCH, WorkloadClass.AI_TRAINING
_REALTIME = WorkloadClass.AI_INFERENCE_REALTIME
_KEYS = {_REALTIME: "realtime", _BATCH: "batch", _TRAINING: "training"}
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
# Bounds far beyond any real scenario, there to refuse a typo (`1e12`) before it overflows a
# date or an array, or becomes silently something else (a job of 1e300 hours, one step).
_MAX_WARMUP_DAYS = 366.0
_MAX_WINDOW = timedelta(days=3_660)
"""Ten years: a window far longer only ever means a mistyped year."""
_MAX_INTERVALS = 1_100_000
"""About two years of one-minute steps: an mpc run of about a quarter of an hour."""
_MAX_ARRIVALS_PER_DAY = 10_000.0
_MAX_JOB_GPUS = 100_000.0
_MAX_JOB_HOURS = 10 * 8_766.0  # ten years
# The simulator settings a scenario may override (all numbers; nodes come from the sites).
_SIMULATOR_NUMBERS = ", ".join(
    f.name
    for f in dataclasses.fields(MarketSimulatorConfig)
    if f.name not in ("nodes", "difficulty_epoch", "gpu_spot_start_usd_per_gpu_hour")
)


@dataclass(frozen=True, slots=True)
class ReplayMarket:
    """Real prices from files: ERCOT real-time (one or more files in time order), the daily
    bitcoin file, optional day-ahead prices, GPU spot per family as a constant or a CSV;
    `settlement_point_type`: the rows a native long file is read from for a point it lists
    under several types (a load zone: LZ or LZEW)."""

    electricity: tuple[Path, ...]
    bitcoin: Path
    day_ahead: Path | None
    gpu_spot_usd_per_gpu_hour: Mapping[str, float | GpuSpotCsv]
    max_fill_steps: int = 0
    settlement_point_type: str = DEFAULT_POINT_TYPE


@dataclass(frozen=True, slots=True)
class SimulatedMarket:
    """The seeded market simulator."""

    config: MarketSimulatorConfig
    seed: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario file: the window [start, end) in steps of `step` after `warmup` of
    history, the market, the sites with their demand, the money terms and the demand seed."""

    path: Path
    name: str
    start: datetime
    end: datetime
    step: timedelta
    warmup: timedelta
    market: ReplayMarket | SimulatedMarket
    sites: tuple[SiteSpec, ...]
    demand: Mapping[str, DemandSpec]
    terms: Terms
    seed: int

    @property
    def warmup_start(self) -> datetime:
        """Where the market begins: `warmup` rounded down to whole steps before `start`, so
        that every interval, warm-up included, lies on the window's grid."""
        return self.start - (self.warmup // self.step) * self.step


def load_scenario(path: Path) -> Scenario:
    """Parse the scenario at `path`; DataError naming file, line and key on any problem."""
    root = load_toml(path)
    start, end, step, warmup = _window(_required_table(root, "window"))
    sites, demand = _sites(root, step, end - start)
    scenario = Scenario(
        path=path,
        name=root.get("name", str, path.stem),
        start=start,
        end=end,
        step=step,
        warmup=warmup,
        market=_market(_required_table(root, "market"), sites),
        sites=sites,
        demand=demand,
        terms=Terms(
            root.number("sla_penalty_usd_per_gpu_hour", minimum=0.0),
            _pool_fee(root),
        ),
        seed=root.integer("seed", 0, minimum=0),
    )
    root.finish()
    return scenario


def _pool_fee(root: TomlTable) -> float:
    fee = root.number("pool_fee", DEFAULT_POOL_FEE, minimum=0.0)
    if fee >= 1.0:
        raise root.error("pool_fee", f"must be below 1 (a share of the payout), got {fee}")
    return fee


def _sites(
    root: TomlTable, step: timedelta, window: timedelta
) -> tuple[tuple[SiteSpec, ...], dict[str, DemandSpec]]:
    sites: list[SiteSpec] = []
    demand = {}
    for table in root.tables("sites"):
        site, site_demand = _site(table, step, window)
        # Results, demand and state are keyed by site name: a second site of the same name
        # would silently replace the first.
        names = [s.name for s in sites]
        if site.name in names:
            message = f"{site.name!r} is already the name of sites[{names.index(site.name)}]"
            raise table.error("name", message)
        sites.append(site)
        if site_demand is not None:
            demand[site.name] = site_demand
    if not sites:
        raise root.error("sites", "at least one [[sites]] table is required")
    return tuple(sites), demand


def _required_table(table: TomlTable, key: str) -> TomlTable:
    found = table.table(key)
    if found is None:
        raise table.error(key, f"missing [{table.key(key)}] table")
    return found


def _window(table: TomlTable) -> tuple[datetime, datetime, timedelta, timedelta]:
    start, end = table.datetime("start"), table.datetime("end")
    step = _step(table)
    warmup_days = table.number("warmup_days", 7.0, minimum=0.0, maximum=_MAX_WARMUP_DAYS)
    if end <= start:
        raise table.error("end", f"must be after start ({start.isoformat()})")
    try:
        warmup = timedelta(days=warmup_days)
        start - warmup - step  # the warm-up must start on a date Python can hold
    except OverflowError:
        raise table.error("start", f"too early for {warmup_days:g} days of warm-up") from None
    if warmup < step:
        raise table.error("warmup_days", f"must cover at least one step ({step} long)")
    if (warmup // step) * step < _DAY:
        message = "must be at least one day: a decision knows the day before's bitcoin figures"
        if warmup >= _DAY:
            message = f"must hold at least one day in whole steps of {step}"
        raise table.error("warmup_days", message)
    if (end - start) % step:
        raise table.error("end", f"end − start is not a whole number of {step} steps")
    if end - start > _MAX_WINDOW or (end - start) // step > _MAX_INTERVALS:
        message = (
            f"the window is {(end - start) // step:,} steps over {(end - start).days:,} days: "
            f"at most {_MAX_INTERVALS:,} steps and {_MAX_WINDOW.days:,} days"
        )
        raise table.error("end", message)
    table.finish()
    return start, end, step, warmup


def _step(table: TomlTable) -> timedelta:
    """`step_minutes` as a step: the markets step in whole seconds, at least one."""
    minutes = table.number("step_minutes", above=0.0)
    try:
        step = timedelta(minutes=minutes)
    except OverflowError:
        raise table.error("step_minutes", f"too large, got {minutes}") from None
    if step < _SECOND or step % _SECOND:
        seconds = f"{minutes} minutes is {step.total_seconds():g} s"
        message = f"must be a whole number of seconds (at least 1 s): {seconds}"
        raise table.error("step_minutes", message)
    return step


def _market(table: TomlTable, sites: tuple[SiteSpec, ...]) -> ReplayMarket | SimulatedMarket:
    kind = table.get("kind", str)
    spot = _spot_prices(table)
    if kind == "replay":
        market: ReplayMarket | SimulatedMarket = _replay_market(table, spot)
    elif kind == "simulated":
        market = _simulated_market(table, sites, _constant_spot(table, spot))
    else:
        raise table.error("kind", f"expected 'replay' or 'simulated', got {kind!r}")
    table.finish()
    return market


def _spot_prices(table: TomlTable) -> dict[str, float | GpuSpotCsv]:
    """Per GPU family: a constant USD/GPU-hour, or a table naming a CSV of quotes."""
    prices = table.table("gpu_spot_usd_per_gpu_hour")
    if prices is None:
        return {}
    spot: dict[str, float | GpuSpotCsv] = {}
    for family in prices.names():
        # A family no GPU belongs to would silently earn no spot revenue.
        if family not in gpu_families():
            known = ", ".join(sorted(gpu_families()))
            raise prices.error(family, f"not a GPU family (known: {known})")
        value = prices.get(family, object)
        if isinstance(value, dict):
            spot[family] = _spot_csv(prices.table(family) or prices, family)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            spot[family] = prices.number(family, minimum=0.0)
        else:
            message = f"expected USD/GPU-hour or a table with path and price_column, got {value!r}"
            raise prices.error(family, message)
    prices.finish()
    return spot


def _spot_csv(table: TomlTable, family: str) -> GpuSpotCsv:
    gpu_column = table.optional("gpu_column", str)
    gpu = table.optional("gpu", str)
    if (gpu_column is None) != (gpu is None):
        missing = "gpu" if gpu is None else "gpu_column"
        raise table.error(missing, "gpu_column and gpu go together (which rows of a long file)")
    source = GpuSpotCsv(
        path=table.path_value("path"),
        family=family,
        price_column=table.get("price_column", str),
        gpu_column=gpu_column,
        gpu=gpu,
        max_age=timedelta(days=table.number("max_age_days", 2.0, above=0.0)),
    )
    table.finish()
    return source


def _constant_spot(table: TomlTable, spot: Mapping[str, float | GpuSpotCsv]) -> dict[str, float]:
    """The simulator's starting spot prices, which must be numbers."""
    for family, price in spot.items():
        if isinstance(price, GpuSpotCsv):
            key = f"gpu_spot_usd_per_gpu_hour.{family}"
            raise table.error(key, "the simulated market starts from a number, not a file")
    return {family: float(price) for family, price in spot.items() if isinstance(price, float)}


def _replay_market(table: TomlTable, spot: dict[str, float | GpuSpotCsv]) -> ReplayMarket:
    files = table.get("electricity", object)
    names = [files] if isinstance(files, str) else files
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise table.error("electricity", "expected a path or a list of paths")
    electricity = tuple(table.resolve("electricity", name) for name in names)
    day_ahead = table.path_value("day_ahead") if table.has("day_ahead") else None
    return ReplayMarket(
        electricity=electricity,
        bitcoin=table.path_value("bitcoin"),
        day_ahead=day_ahead,
        gpu_spot_usd_per_gpu_hour=spot,
        max_fill_steps=table.integer("max_fill_steps", 0, minimum=0),
        settlement_point_type=_point_type(table),
    )


def _point_type(table: TomlTable) -> str:
    point_type = table.get("settlement_point_type", str, DEFAULT_POINT_TYPE).strip()
    if not point_type:
        raise table.error("settlement_point_type", "name a type, e.g. 'LZ' or 'LZEW'")
    return point_type


def _simulated_market(
    table: TomlTable, sites: tuple[SiteSpec, ...], spot: dict[str, float]
) -> SimulatedMarket:
    overrides: dict[str, object] = {"nodes": tuple(dict.fromkeys(s.node for s in sites))}
    if spot:
        overrides["gpu_spot_start_usd_per_gpu_hour"] = spot
    settings = table.table("simulator") or TomlTable(table.path, {}, {}, table.key("simulator"))
    for key in settings.names():
        if key not in _SIMULATOR_NUMBERS.split(", "):
            raise settings.error(key, f"not a simulator setting (known: {_SIMULATOR_NUMBERS})")
        bound = _simulator_bound(key)
        overrides[key] = settings.number(key, minimum=-bound, maximum=bound)
    settings.finish()
    try:
        config = MarketSimulatorConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise settings.error(exc.field, exc.message) from None
    return SimulatedMarket(config, table.integer("seed", 0, minimum=0))


def _simulator_bound(key: str) -> float:
    """The largest magnitude a simulator setting may take: far past any market seen, short
    of where its arithmetic overflows (a spike of 1e308 USD/MWh made every price NaN)."""
    if key.endswith("_usd_per_mwh"):
        return 1e6
    if key == "btc_start_usd":
        return 1e9
    if key == "difficulty_start":
        return 1e21
    return 1e3  # rates, probabilities, volatilities, drifts, hours


def _site(
    table: TomlTable, step: timedelta, window: timedelta
) -> tuple[SiteSpec, DemandSpec | None]:
    asics, gpus = _fleet(table)
    site = SiteSpec(
        name=table.get("name", str),
        node=table.get("node", str),
        capacity_mw=table.number("capacity_mw", above=0.0),
        pue=table.number("pue", 1.0, minimum=1.0),
        contract=_contract(_required_table(table, "contract")),
        asics=asics,
        gpus=gpus,
        ramp_mw_per_step=_optional_number(table, "ramp_mw_per_step", above=0.0),
        min_on_steps=_steps(table, "min_on_minutes", step, window),
        min_off_steps=_steps(table, "min_off_minutes", step, window),
        day_ahead_node=table.optional("day_ahead_node", str),
    )
    _check_sleep_fits(table, site)
    _check_one_device_fits(table, site)
    _check_commitment_fits(table, site)
    demand_table = table.table("demand")
    demand = None if demand_table is None else _demand(demand_table, site)
    table.finish()
    return site, demand


def _optional_number(table: TomlTable, key: str, *, above: float) -> float | None:
    """The number at `key` (> `above`), None when absent (no limit)."""
    return table.number(key, above=above) if table.has(key) else None


def _check_sleep_fits(table: TomlTable, site: SiteSpec) -> None:
    """A sleeping miner still draws power: a site whose miners, all asleep, draw more than its
    MW could never keep to its limit, whatever a strategy decided."""
    asleep_mw = grid_mw(site.asleep_w, site.pue)
    if asleep_mw > site.capacity_mw:
        message = (
            f"{site.capacity_mw} MW is less than the site's miners draw asleep "
            f"({asleep_mw:.4g} MW with PUE {site.pue}): fewer miners or more MW"
        )
        raise table.error("capacity_mw", message)


def _check_one_device_fits(table: TomlTable, site: SiteSpec) -> None:
    """Each model of the fleet must fit one device running beside the miners asleep: a model
    that cannot would never run, and earn nothing whatever a strategy decided."""
    running_w = [
        (f.model.name, min(p.power_w for p in f.model.profiles) - f.model.sleep_power_w)
        for f in site.asics
        if f.count
    ]
    running_w += [(f.model.name, f.model.busy_power_w) for f in site.gpus if f.count]
    for name, watts in running_w:
        need_mw = grid_mw(site.asleep_w + watts, site.pue)
        if need_mw > site.capacity_mw:
            message = (
                f"{site.capacity_mw} MW cannot run a single {name} ({need_mw:.4g} MW with "
                f"PUE {site.pue}, the site's miners asleep): more MW or no {name}"
            )
            raise table.error("capacity_mw", message)


def _check_commitment_fits(table: TomlTable, site: SiteSpec) -> None:
    """A PPA cannot commit more MW than the site can draw: the excess would be sold back as if
    the site could have taken it."""
    contract = site.contract
    if isinstance(contract, PpaContract) and contract.committed_mw > site.capacity_mw:
        message = f"{contract.committed_mw} MW is more than the site's capacity_mw"
        raise table.error("contract.committed_mw", f"{message} ({site.capacity_mw})")


def _steps(table: TomlTable, key: str, step: timedelta, window: timedelta) -> int:
    """Whole steps covering the minutes at `key` (none given: 0; at least one step); warns of
    a time longer than the window, which locks a miner's first change for the rest of it."""
    minutes = table.number(key, 0.0, minimum=0.0)
    try:
        duration = timedelta(minutes=minutes)
    except OverflowError:
        raise table.error(key, f"too large, got {minutes:g}") from None
    if duration > window:
        table.warn(key, f"{minutes:g} minutes is longer than the window ({window})")
    return steps_covering(duration, step)


def _fleet(table: TomlTable) -> tuple[tuple[AsicFleet, ...], tuple[GpuFleet, ...]]:
    asics, gpus = [], []
    for entry in table.tables("fleet"):
        model, count = entry.get("model", str), entry.integer("count", minimum=0)
        if model in ASIC_MODELS:
            asics.append(AsicFleet(ASIC_MODELS[model], count))
        elif model in GPU_MODELS:
            gpus.append(GpuFleet(GPU_MODELS[model], count))
        else:
            known = ", ".join([*ASIC_MODELS, *GPU_MODELS])
            raise entry.error("model", f"unknown model {model!r} (known: {known})")
        entry.finish()
    return tuple(asics), tuple(gpus)


def _contract(table: TomlTable) -> Contract:
    kind = table.get("kind", str)
    if kind == "rt":
        contract: Contract = RtContract(table.number("adder_usd_per_mwh", 0.0))
    elif kind == "ppa":
        contract = PpaContract(
            price_usd_per_mwh=table.number("price_usd_per_mwh"),
            committed_mw=table.number("committed_mw", minimum=0.0),
            sellback_fee_usd_per_mwh=table.number("sellback_fee_usd_per_mwh", 0.0, minimum=0.0),
        )
    else:
        raise table.error("kind", f"expected 'rt' or 'ppa', got {kind!r}")
    table.finish()
    return contract


def _demand(table: TomlTable, site: SiteSpec) -> DemandSpec:
    families = site.families
    family = table.get("family", str, families[0] if families else "")
    if family not in families:
        raise table.error("family", f"no {family or 'GPU'} fleet at site {site.name!r}")
    realtime_table = table.table("realtime")
    realtime = None if realtime_table is None else _realtime(realtime_table, family)
    arrivals = tuple(
        _arrivals(found, workload_class, family)
        for key, workload_class in (("batch", _BATCH), ("training", _TRAINING))
        if (found := table.table(key)) is not None
    )
    spec = DemandSpec(family, realtime, arrivals)
    _check_priority_order(table, spec)
    table.finish()
    return spec


def _realtime(table: TomlTable, family: str) -> RealtimeProfile:
    profile = RealtimeProfile(
        base_gpus=table.number("base_gpus", minimum=0.0),
        peak_gpus=table.number("peak_gpus", minimum=0.0),
        price_usd_per_gpu_hour=_price(table, _REALTIME, family),
        peak_hour_utc=table.number("peak_hour_utc", 18.0, minimum=0.0),
        weekend_factor=table.number("weekend_factor", 1.0, minimum=0.0),
        noise=table.number("noise", 0.0, minimum=0.0),
    )
    _check_daily_curve(table, profile)
    table.finish()
    return profile


def _check_daily_curve(table: TomlTable, profile: RealtimeProfile) -> None:
    """The daily curve rises from base_gpus to peak_gpus at an hour of the day: a peak below
    the base, or an hour past 24, would silently be a different curve."""
    base, peak = profile.base_gpus, profile.peak_gpus
    if peak < base:
        raise table.error("peak_gpus", f"must be at least base_gpus ({base:g}), got {peak:g}")
    if profile.peak_hour_utc >= 24.0:
        hour = profile.peak_hour_utc
        raise table.error("peak_hour_utc", f"must be an hour in [0, 24), got {hour:g}")


def _arrivals(table: TomlTable, workload_class: WorkloadClass, family: str) -> JobArrivals:
    gpus = table.range("gpus", minimum=1.0, maximum=_MAX_JOB_GPUS)
    arrivals = JobArrivals(
        workload_class=workload_class,
        arrivals_per_day=table.number(
            "arrivals_per_day", minimum=0.0, maximum=_MAX_ARRIVALS_PER_DAY
        ),
        gpus=(round(gpus[0]), round(gpus[1])),
        hours=table.range("hours", minimum=0.0, maximum=_MAX_JOB_HOURS),
        deadline_hours=table.range("deadline_hours", minimum=0.0, maximum=_MAX_JOB_HOURS),
        price_usd_per_gpu_hour=_price(table, workload_class, family),
    )
    table.finish()
    return arrivals


def _price(table: TomlTable, workload_class: WorkloadClass, family: str) -> float:
    if table.has("price_usd_per_gpu_hour"):
        return table.number("price_usd_per_gpu_hour", minimum=0.0)
    try:
        return DEFAULT_PRICE_SHEET.price(workload_class, family)
    except KeyError as exc:
        raise table.error("price_usd_per_gpu_hour", f"required: {exc.args[0]}") from None


def _check_priority_order(table: TomlTable, spec: DemandSpec) -> None:
    """Realtime must pay more than batch and batch more than training: with one SLA penalty
    for all, that is what makes the optimizer serve them in that order when power is short."""
    prices = [(_KEYS[a.workload_class], a.price_usd_per_gpu_hour) for a in spec.arrivals]
    if spec.realtime is not None:
        prices.insert(0, ("realtime", spec.realtime.price_usd_per_gpu_hour))
    for (higher, high), (lower, low) in pairwise(prices):
        if high <= low:
            message = f"{higher} must pay more per GPU-hour than {lower} ({high} <= {low})"
            raise table.error(f"{lower}.price_usd_per_gpu_hour", message)
