"""One simulated miner: its state and physics (profile, sleep and wake ramp, heat, shares).

Time only moves when `step(now)` is called with a later instant, so a test can fast-forward an
hour in one call. Between two steps the miner integrates exactly what happened: the wake ramp,
the hashes done, the shares found, and the first-order lag of its temperature.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

from hcp.domain.devices import AsicProfile
from hcp.domain.telemetry import MinerState
from hcp.simulators.asic.config import BOARDS, Faults, MinerSimConfig
from hcp.simulators.asic.sessions import SessionTable

THERMAL_RISE_AT_STOCK_C = 45.0
"""Board temperature above ambient at the stock profile, once settled."""
OVERHEAT_FACTOR = 1.7
"""With failed cooling the rise is this much larger: at 25 °C ambient the boards would settle at
101.5 °C, past Dangerous, so they cut off, cool and come back, over and over."""
THERMAL_TAU_S = 90.0
"""Time constant of the boards' temperature lag."""
SHARES_PER_TH_S = 0.002
"""Pool shares found per second per TH/s (a fixed pool difficulty)."""
REJECT_RATIO = 0.003
REJECT_RATIO_HOT = 0.03
TARGET_C, HOT_C, DANGEROUS_C = 75.0, 90.0, 100.0
"""LuxOS's temperature thresholds (`tempctrl`): the fans aim at Target; Hot is a warning; at
Dangerous the miner cuts its hashboards off and keeps them off until they cool to Target."""

# The modes, looked up once: on Python 3.11 the enum metaclass defines __getattr__, so no
# `MinerState.X` lookup is ever specialised (it costs ten times a module global), and the
# physics compares modes several times per step.
_MINING, _SLEEPING, _WAKING = MinerState.MINING, MinerState.SLEEPING, MinerState.WAKING


@dataclass(frozen=True, slots=True)
class AtmSettings:
    """LuxOS's Advanced Thermal Management configuration, as `atmset` sets and `atm` reports it.

    ATM steps the profile down when the boards come within `temp_window` °C of `Hot`, and back
    up when they cool, between `min_profile` ("" = unbounded) and `max_profile`; it waits
    `startup_minutes` after boot and `post_ramp_minutes` after a ramp. The simulator stores and
    reports these settings (and refuses `profileset` while ATM is on, as LuxOS does) but does
    not move profiles by itself.
    """

    enabled: bool = False
    startup_minutes: int = 15
    post_ramp_minutes: int = 15
    temp_window: float = 5.0
    min_profile: str = ""
    max_profile: str = ""
    """A profile name; MinerSim starts with the model's stock profile here."""


class MinerSim:
    """The state and physics of one simulated LuxOS miner, driven by its `AsicModel`.

    Readings (`hashrate_ths`, `power_w`, ...) describe the instant of the last `step`; commands
    (`sleep`, `wake`, `set_profile`) first step to `now`, then change state.
    """

    def __init__(self, config: MinerSimConfig, start: datetime) -> None:
        self.config = config
        self.model = config.model
        self.faults = config.faults
        self.profile = self.model.profile(config.profile or self.model.stock_profile)
        self._stock_power_w = self.model.stock.power_w  # the heat scale, asked at every step
        self.atm = AtmSettings(max_profile=self.model.stock_profile)
        self.sessions = SessionTable(config.session_timeout_s, random.Random(config.seed + 7919))
        # Its nameplate, made from its seed: a locally administered MAC and a serial number.
        mac_tail = config.seed & 0xFFFFFF
        self.mac_address = "02:48:43:" + ":".join(
            f"{(mac_tail >> s) & 0xFF:02X}" for s in (16, 8, 0)
        )
        self.serial_number = f"HCPSIM{config.seed:08d}"
        self._rng = random.Random(config.seed)
        self._booted_s = self._t = start.timestamp()
        self._mode = _SLEEPING if config.sleeping else _MINING
        self._cut_off = False  # boards off to cool after reaching DANGEROUS_C
        self._wake_started_s = self._t
        # It starts settled; one whose cooling failed starts just under its cut-off (it would
        # not have settled above it), and reaches it within a minute.
        settled_c = self._settled_temperature_c(self._ramp(self._t))
        self._temperature_c = min(settled_c, DANGEROUS_C - 1.0) if self.psu_on else settled_c
        self._accepted = self._rejected = self._terahashes = 0.0
        self._sample()

    # --- commands -------------------------------------------------------------------------

    def sleep(self, now: datetime) -> None:
        """Curtail: hashboards and PSU off; the miner draws `sleep_power_w` and hashes nothing."""
        self.step(now)
        self._mode = _SLEEPING
        self._sample()

    def wake(self, now: datetime) -> None:
        """Leave sleep: ramp linearly to the profile over `model.wake_seconds`."""
        self.step(now)
        if self._mode is _SLEEPING:
            self._start_ramp()
        self._sample()

    def _start_ramp(self) -> None:
        """Ramp the boards up to the profile from now, over `model.wake_seconds`."""
        self._wake_started_s = self._t
        self._mode = _WAKING if self.model.wake_seconds > 0 else _MINING

    def set_profile(self, name: str, now: datetime) -> AsicProfile:
        """Switch to the hashing profile `name` (KeyError when the model has none such)."""
        profile = self.model.profile(name)
        if profile.hashrate_ths <= 0:
            raise KeyError(f"{name!r} is not a hashing profile; use curtail to sleep")
        self.step(now)
        self.profile = profile
        self._sample()
        return profile

    def set_atm(self, settings: AtmSettings) -> None:
        """Replace the ATM configuration (profile names must be the model's hashing ones)."""
        for name in (settings.min_profile, settings.max_profile):
            if name and name not in {p.name for p in self.hashing_profiles()}:
                raise KeyError(f"{name!r} is not a hashing profile of {self.model.name}")
        self.atm = settings

    def set_faults(self, faults: Faults, now: datetime) -> None:
        """Inject (or clear) faults from `now` on."""
        self.step(now)
        self.faults = faults
        self._sample()

    def hashing_profiles(self) -> tuple[AsicProfile, ...]:
        """The profiles `profileset` accepts, lowest power first (sleep is curtail's job)."""
        hashing = (p for p in self.model.profiles if p.hashrate_ths > 0)
        return tuple(sorted(hashing, key=lambda p: p.power_w))

    def profile_step(self, name: str) -> int:
        """How many hashing profiles `name` sits above (+) or below (-) the stock one, as the
        `profiles` reply numbers them (ValueError when it is not a hashing profile)."""
        names = [p.name for p in self.hashing_profiles()]
        return names.index(name) - names.index(self.model.stock_profile)

    def profile_at_step(self, step: int) -> AsicProfile:
        """The hashing profile `step` places from the stock one (KeyError beyond the list)."""
        profiles = self.hashing_profiles()
        index = [p.name for p in profiles].index(self.model.stock_profile) + step
        if not 0 <= index < len(profiles):
            raise KeyError(f"no profile at step {step:+d}")
        return profiles[index]

    def profile_within(self, watts: float) -> AsicProfile:
        """The highest-power hashing profile drawing at most `watts`, else the lowest one."""
        profiles = self.hashing_profiles()
        fitting = [p for p in profiles if p.power_w <= watts]
        return fitting[-1] if fitting else profiles[0]

    # --- physics --------------------------------------------------------------------------

    def step(self, now: datetime) -> None:
        """Advance to `now` (an earlier instant is ignored: simulated time never runs back)."""
        target_s = now.timestamp()
        while self._t < target_s:
            segment_end_s = target_s
            wake_end_s = self._wake_started_s + self.model.wake_seconds
            # A wake ends a segment only while it ramps: boards cut off to cool stay at 0.
            if self._mode is _WAKING and not self._cut_off and wake_end_s > self._t:
                segment_end_s = min(target_s, wake_end_s)
            self._integrate(self._t, segment_end_s)
            self._t = segment_end_s
            if self._mode is _WAKING and self._ramp(self._t) >= 1.0:
                self._mode = _MINING
        self._protect()
        self._sample()

    def _protect(self) -> None:
        """Cut the hashboards off at DANGEROUS_C; once they have cooled to TARGET_C, ramp them
        up again as after a wake (checked at each step, so at each poll or command)."""
        if not self._cut_off and self.psu_on and self._temperature_c >= DANGEROUS_C:
            self._cut_off = True
        elif self._cut_off and self._temperature_c <= TARGET_C:
            self._cut_off = False
            if self._mode is not _SLEEPING:
                self._start_ramp()

    def _integrate(self, t0_s: float, t1_s: float) -> None:
        # The ramp is linear within a segment, so its mean is exact at the midpoint.
        dt_s = t1_s - t0_s
        ramp = (self._ramp(t0_s) + self._ramp(t1_s)) / 2
        hashrate_ths = self._expected_hashrate_ths(ramp)
        self._terahashes += hashrate_ths * dt_s
        shares = hashrate_ths * SHARES_PER_TH_S * dt_s
        reject = REJECT_RATIO_HOT if self.faults.overheating else REJECT_RATIO
        self._accepted += shares * (1 - reject)
        self._rejected += shares * reject
        settled_c = self._settled_temperature_c(ramp)
        decay = math.exp(-dt_s / THERMAL_TAU_S)
        self._temperature_c = settled_c + (self._temperature_c - settled_c) * decay

    def _ramp(self, t_s: float) -> float:
        """How far the boards are driven towards the profile: 0 asleep or cut off, 1 at
        profile."""
        if self._mode is _SLEEPING or self._cut_off:
            return 0.0
        if self._mode is _WAKING and self.model.wake_seconds > 0:
            return min(1.0, max(0.0, (t_s - self._wake_started_s) / self.model.wake_seconds))
        return 1.0

    def _expected_hashrate_ths(self, ramp: float) -> float:
        return self.profile.hashrate_ths * ramp * self.alive_boards / BOARDS

    def _expected_power_w(self, ramp: float) -> float:
        hashing_w = self.profile.power_w - self.model.sleep_power_w
        return self.model.sleep_power_w + hashing_w * ramp * self.alive_boards / BOARDS

    def _settled_temperature_c(self, ramp: float) -> float:
        # Each live board carries a third of the profile's power, whatever the others do.
        load = ramp * self.profile.power_w / self._stock_power_w
        factor = OVERHEAT_FACTOR if self.faults.overheating else 1.0
        return self.config.ambient_c + THERMAL_RISE_AT_STOCK_C * load * factor

    def _sample(self) -> None:
        ramp = self._ramp(self._t)
        noise = self.config.noise
        hashrate = self._expected_hashrate_ths(ramp) * (1 + self._rng.gauss(0, noise))
        self._hashrate_ths = max(0.0, hashrate)
        self._power_w = self._expected_power_w(ramp) * (1 + self._rng.gauss(0, noise / 2))

    # --- readings (as of the last step) ---------------------------------------------------

    @property
    def now(self) -> float:
        """The simulated instant of the last step, in Unix seconds."""
        return self._t

    @property
    def atm_enabled(self) -> bool:
        return self.atm.enabled

    @property
    def state(self) -> MinerState:
        if self._mode is not _SLEEPING and (self.alive_boards == 0 or self._cut_off):
            return MinerState.FAULT
        return self._mode

    @property
    def cut_off(self) -> bool:
        """Whether the boards are off to cool down (they reached DANGEROUS_C)."""
        return self._cut_off

    @property
    def alive_boards(self) -> int:
        return BOARDS - self.faults.dead_boards

    def board_alive(self, board: int) -> bool:
        """Boards die from the last one down: with one dead board, board 2 is the dead one."""
        return board < self.alive_boards

    @property
    def psu_on(self) -> bool:
        return self._mode is not _SLEEPING

    @property
    def ramping(self) -> bool:
        return self._mode is _WAKING and not self._cut_off

    @property
    def hashrate_ths(self) -> float:
        """Reported hashrate in TH/s, with noise."""
        return self._hashrate_ths

    @property
    def power_w(self) -> float:
        """Wall power in W, with noise."""
        return self._power_w

    @property
    def temperature_c(self) -> float:
        """Temperature of every live hashboard in °C."""
        return self._temperature_c

    @property
    def ideal_hashrate_ths(self) -> float:
        """What the profile promises with every board alive."""
        return self.profile.hashrate_ths

    @property
    def elapsed_s(self) -> float:
        """Seconds since the miner booted."""
        return self._t - self._booted_s

    @property
    def average_hashrate_ths(self) -> float:
        """Mean hashrate since boot in TH/s."""
        elapsed_s = self._t - self._booted_s
        return self._terahashes / elapsed_s if elapsed_s > 0 else self._hashrate_ths

    @property
    def accepted(self) -> int:
        return int(self._accepted)

    @property
    def rejected(self) -> int:
        return int(self._rejected)
