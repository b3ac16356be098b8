"""Device model types. The catalog of real models (figures with sources) is `domain.catalog`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DeviceKind(StrEnum):
    ASIC = "asic"
    GPU = "gpu"


@dataclass(frozen=True, slots=True)
class AsicProfile:
    """One operating point of an ASIC: hashrate in TH/s at a wall power in W."""

    name: str
    hashrate_ths: float
    power_w: float

    @property
    def efficiency_j_per_th(self) -> float:
        """Joules per terahash (W per TH/s); lower is better. Infinite for a non-hashing profile."""
        return self.power_w / self.hashrate_ths if self.hashrate_ths > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class AsicModel:
    """An ASIC miner model: its hashing profiles, its sleep draw and how long waking takes."""

    name: str
    manufacturer: str
    profiles: tuple[AsicProfile, ...]
    stock_profile: str
    sleep_power_w: float
    wake_seconds: float
    _by_name: dict[str | None, AsicProfile] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        # The dispatcher looks profiles up several times per miner per tick (100,000 miners:
        # a loop over the profiles took a quarter of the plan's time); the first of a name wins.
        by_name: dict[str | None, AsicProfile] = {}
        for p in self.profiles:
            by_name.setdefault(p.name, p)
        object.__setattr__(self, "_by_name", by_name)

    def profile(self, name: str) -> AsicProfile:
        """The profile called `name`; KeyError names the model and the known profiles."""
        found = self.find_profile(name)
        if found is None:
            known = ", ".join(p.name for p in self.profiles)
            raise KeyError(f"{self.name} has no profile {name!r} (known: {known})")
        return found

    def find_profile(self, name: str | None) -> AsicProfile | None:
        """The profile called `name`, or None for a name the model lacks."""
        return self._by_name.get(name)

    @property
    def stock(self) -> AsicProfile:
        return self.profile(self.stock_profile)


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A GPU model: its family as customers name it (`H100`), power busy and idle in W, memory."""

    name: str
    family: str
    busy_power_w: float
    idle_power_w: float
    memory_gb: int
