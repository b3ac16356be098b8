"""Dispatch vocabulary: what the plan wants of the miners (`AsicTarget`), what we know of each
miner (`MinerView`), the orders we give (`Command`) and what telemetry says of them
(`CommandOutcome`). Plain frozen data; every time is passed in."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from hcp.domain.devices import AsicModel
from hcp.domain.errors import ValidationError
from hcp.domain.telemetry import AsicReading

Slot = str | None
"""What a miner does: the name of the profile it hashes at, or None while it sleeps."""

_NO_COUNTS: Mapping[str, int] = MappingProxyType({})
COUNT_EPSILON = 1e-6
"""LP counts within this of a whole number are that number (2.9999999 miners are 3)."""


class Action(StrEnum):
    SLEEP = "sleep"
    WAKE = "wake"
    PROFILE = "profile"


@dataclass(frozen=True, slots=True)
class AsicTarget:
    """Miners of each ASIC model that should hash at each profile: `{model: {profile: count}}`.

    The rest of each model sleeps, including models the target does not name.
    `max_power_increase_w` bounds the power that the wakes and profile raises of one tick may add
    (the plan's ramp limit, converted to W at the miners by the caller); `reason` says why the
    plan wants this and is carried into every command.
    """

    running: Mapping[str, Mapping[str, int]]
    max_power_increase_w: float = math.inf
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.max_power_increase_w >= 0:
            raise ValidationError("max_power_increase_w", "must be >= 0")
        for model, counts in self.running.items():
            for profile, count in counts.items():
                if count < 0:
                    raise ValidationError(f"running.{model}.{profile}", "must be >= 0")

    def wanted(self, model: str) -> Mapping[str, int]:
        """Miners of `model` wanted at each profile (profiles with none left out)."""
        counts = self.running.get(model, _NO_COUNTS)
        return {profile: count for profile, count in counts.items() if count > 0}

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, Mapping[str, float]],
        max_power_increase_w: float = math.inf,
        reason: str = "",
    ) -> AsicTarget:
        """A target from an allocation's counts (an LP's may be fractional), rounded down so the
        miners dispatched never draw more than the plan allows."""
        running = {
            model: {p: math.floor(n + COUNT_EPSILON) for p, n in by_profile.items()}
            for model, by_profile in counts.items()
        }
        return cls(running, max_power_increase_w, reason)


@dataclass(frozen=True, slots=True)
class Command:
    """One order to one miner.

    `profile` is what a wake or a profile change runs at (None for a sleep), `from_profile` what
    the miner ran at before. Telemetry should then show `expected_power_w`; `power_increase_w` is
    what the command adds to the site's draw (0 for sleeps and profile cuts), `power_decrease_w`
    what it takes off it (0 for wakes and profile raises), both by the catalog. A command is
    confirmed only by a reading taken after `issued_at`, and failed if none has by `confirm_by`.
    `attempt` counts the tries of the same order (1 for the first).
    """

    id: str
    device_id: str
    address: str
    action: Action
    profile: str | None
    reason: str
    issued_at: datetime
    attempt: int
    confirm_by: datetime
    expected_power_w: float
    power_increase_w: float = 0.0
    from_profile: str | None = None
    power_decrease_w: float = 0.0

    @property
    def slot(self) -> Slot:
        """What the miner does once the command is carried out."""
        return None if self.action is Action.SLEEP else self.profile


@dataclass(frozen=True, slots=True)
class Trouble:
    """A miner's latest spell of unhealthy readings: what was wrong, the last reading that
    showed it, and how many spells (`trips`) it has had with no more than a day between them.

    A miner put to sleep for overheating cools down, reads healthy, is woken, and overheats
    again; the dispatcher holds it asleep for a while after each spell (`held_until`), twice as
    long after each trip, so it does not cycle every few ticks."""

    problems: str
    last_seen: datetime
    trips: int = 1


@dataclass(frozen=True, slots=True)
class MinerView:
    """What the dispatcher knows of one miner now.

    `reading` is the last poll (None when the miner did not answer it). The rest is the
    dispatcher's own memory: the command in flight (`pending`), the last one telemetry confirmed,
    the last one that failed (cleared once confirmed or when the miner is degraded), until when
    the miner is degraded, the last reading taken while it was mining (its measured
    efficiency while it sleeps), its latest spell of unhealthy readings (`trouble`), and when
    the last sleep and the last wake sent to it were issued (`slept_at`, `woken_at`: None
    when this dispatcher sent none). `maintenance` says why an operator took the miner out of
    the dispatcher's hands (None: it is in service).
    """

    device_id: str
    model: AsicModel
    address: str
    reading: AsicReading | None
    pending: Command | None = None
    confirmed: Command | None = None
    failed: Command | None = None
    degraded_until: datetime | None = None
    last_mining: AsicReading | None = None
    trouble: Trouble | None = None
    maintenance: str | None = None
    slept_at: datetime | None = None
    woken_at: datetime | None = None


class OutcomeStatus(StrEnum):
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer command to the same miner went before telemetry settled it


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What telemetry says of one command at `at`; `detail` says what the miner reads as."""

    command: Command
    status: OutcomeStatus
    at: datetime
    detail: str

    @property
    def final(self) -> bool:
        return self.status is not OutcomeStatus.IN_PROGRESS


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """How the dispatcher paces and judges its commands.

    Telemetry reads every miner each `poll_interval_s`. A sleep must be confirmed within
    `confirm_polls` polls; a wake within the model's wake time plus those polls; a profile change
    within `profile_settle_s` plus those polls. An order is tried `max_attempts` times, then the
    miner is degraded (gets no work) for `degraded_cooldown_s`. A miner reads as asleep at up to
    (1 + `sleep_power_tolerance`) x its model's sleep power. Increases issued within
    `ramp_window_s` before now share the tick's ramp budget (0: only those issued at `now`).
    A miner that read unhealthy stays asleep `unhealthy_hold_s` after its last unhealthy reading,
    doubled for each further trip (`Trouble.trips`), up to `unhealthy_hold_max_s`. A miner woken
    less than `min_on_s` ago is put to sleep, and one put to sleep less than `min_off_s` ago is
    woken, only when no other miner can be (the site's minimum on and off time; 0: none).
    """

    poll_interval_s: float = 30.0
    confirm_polls: int = 2
    profile_settle_s: float = 60.0
    max_attempts: int = 3
    degraded_cooldown_s: float = 1_800.0
    sleep_power_tolerance: float = 0.25
    ramp_window_s: float = 0.0
    unhealthy_hold_s: float = 600.0
    unhealthy_hold_max_s: float = 14_400.0
    min_on_s: float = 0.0
    min_off_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("max_attempts", "must be at least 1")
        if not (self.min_on_s >= 0 and self.min_off_s >= 0):
            raise ValidationError("min_on_s", "minimum on and off times must be >= 0")
        if self.poll_interval_s <= 0 or self.confirm_polls < 1:
            raise ValidationError("poll_interval_s", "polls must be positive")
        if not 0 <= self.unhealthy_hold_s <= self.unhealthy_hold_max_s:
            raise ValidationError("unhealthy_hold_s", "must be >= 0 and <= unhealthy_hold_max_s")

    def held_until(self, trouble: Trouble) -> datetime:
        """Until when a miner with `trouble` is kept asleep (it may hash again from then)."""
        doublings = min(trouble.trips - 1, 32)  # far past any cap; keeps the float finite
        hold = min(self.unhealthy_hold_s * 2**doublings, self.unhealthy_hold_max_s)
        return trouble.last_seen + timedelta(seconds=hold)


DEFAULT_POLICY = DispatchPolicy()


@dataclass(frozen=True, slots=True)
class Degradation:
    """A miner that gets no work until `until`, and why."""

    device_id: str
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class DispatchPlan:
    """What one tick decides.

    `commands` to send now: the `decreases` first, then the `increases` (wakes and profile
    raises) that fit in what the delivered decreases free beside `room_w`, the power the site
    can take before any decrease lands (`planning.admit_increases`); `deferred` miners whose
    wake or profile raise waits for ramp room, or for decreases that did not get through;
    `shortfall` miners per model the target wants that no healthy, manageable miner can run;
    `unhealthy` and `degraded` miners (device id: why) that get no work; `newly_degraded` the
    miners this tick gave up on; `power_increase_w` what the commands add to the site's draw.
    """

    commands: tuple[Command, ...]
    deferred: tuple[str, ...] = ()
    shortfall: Mapping[str, int] = field(default_factory=dict)
    unhealthy: Mapping[str, str] = field(default_factory=dict)
    degraded: Mapping[str, str] = field(default_factory=dict)
    newly_degraded: tuple[Degradation, ...] = ()
    power_increase_w: float = 0.0
    room_w: float = 0.0

    @property
    def decreases(self) -> tuple[Command, ...]:
        """The commands that add nothing to the site's draw (sleeps, profile cuts)."""
        return tuple(c for c in self.commands if c.power_increase_w <= 0)

    @property
    def increases(self) -> tuple[Command, ...]:
        """The wakes and profile raises, in the order they are admitted."""
        return tuple(c for c in self.commands if c.power_increase_w > 0)
