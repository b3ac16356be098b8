"""Telemetry readings: what a device reported at one instant, in canonical units."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class MinerState(StrEnum):
    """What an ASIC is doing: hashing, asleep (curtailed), ramping up after a wake, or broken."""

    MINING = "mining"
    SLEEPING = "sleeping"
    WAKING = "waking"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class AsicReading:
    """One poll of one ASIC miner.

    `device` is how the driver reached it (`host:port`); `at` is when the poll finished (UTC).
    Hashrate in TH/s and wall power in W as the miner reports them; `temperature_c` is the hottest
    hashboard in °C (None when no board reports one). `problems` lists what is wrong in words
    ("board 2 dead", "overheating: 97 °C >= 90 °C"); a reading without problems is healthy.
    """

    device: str
    at: datetime
    state: MinerState
    hashrate_ths: float
    power_w: float
    temperature_c: float | None
    profile: str | None
    accepted_shares: int
    rejected_shares: int
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def mining(self) -> bool:
        """True only while hashing at its profile (a waking miner is not mining yet)."""
        return self.state is MinerState.MINING
