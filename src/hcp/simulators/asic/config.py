"""Configuration of simulated miners and fleets: model, address, starting state, injected faults."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hcp.domain.devices import AsicModel

BOARDS = 3
"""Hashboards per simulated miner (every current Antminer has three)."""

CGMINER_PORT = 4028


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected into one simulated miner.

    offline: nothing listens, so connections are refused.
    dead_boards: how many of the 3 hashboards are dead (each takes a third of hashrate and power).
    overheating: cooling has failed; temperatures settle far above the `Hot` threshold.
    malformed_replies: every reply is garbage bytes instead of JSON.
    reply_delay_s: seconds to wait before answering.
    reset_connections: read the request, then reset the connection (TCP RST) without answering.
    """

    offline: bool = False
    dead_boards: int = 0
    overheating: bool = False
    malformed_replies: bool = False
    reply_delay_s: float = 0.0
    reset_connections: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.dead_boards <= BOARDS:
            raise ValueError(f"dead_boards must be 0..{BOARDS}, got {self.dead_boards}")
        if self.reply_delay_s < 0:
            raise ValueError(f"reply_delay_s must be >= 0, got {self.reply_delay_s}")


SESSION_TIMEOUT_S = 60.0
"""How long a LuxOS session may sit idle before the miner drops it."""


@dataclass(frozen=True, slots=True)
class MinerSimConfig:
    """One simulated miner: its model, where it listens and how it starts.

    `port` 0 asks the OS for a free port (the bound port is then on the server). `profile` None
    means the model's stock profile. `noise` is the relative standard deviation of reported
    hashrate (power gets half of it). Sessions expire after `session_timeout_s` idle seconds.
    """

    model: AsicModel
    host: str = "127.0.0.1"
    port: int = CGMINER_PORT
    profile: str | None = None
    sleeping: bool = False
    ambient_c: float = 25.0
    seed: int = 0
    noise: float = 0.01
    session_timeout_s: float = SESSION_TIMEOUT_S
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(self.host).is_loopback:
            # The simulator is a test double: it must never appear on a real network.
            raise ValueError(f"simulated miners listen on loopback only, not {self.host}")
        if self.profile is not None:
            self.model.profile(self.profile)


@dataclass(frozen=True, slots=True)
class FleetSimConfig:
    """Every miner one simulator process serves."""

    miners: tuple[MinerSimConfig, ...]


class Addressing(StrEnum):
    """How miners of a fleet are told apart: own loopback IP on 4028, or own port on 127.0.0.1."""

    IPS = "ips"
    PORTS = "ports"


def loopback_hosts(first: str, count: int) -> Iterator[str]:
    """`count` loopback IPv4 addresses from `first` up, skipping .0 and .255 last octets."""
    address = ipaddress.IPv4Address(first)
    made = 0
    while made < count:
        if not address.is_loopback:
            raise ValueError(f"ran out of loopback addresses after {made} (at {address})")
        if address.packed[-1] not in (0, 255):
            yield str(address)
            made += 1
        address += 1


def uniform_fleet(
    model: AsicModel,
    count: int,
    *,
    addressing: Addressing = Addressing.IPS,
    first_ip: str = "127.1.0.1",
    first_port: int = 14028,
    faults: Mapping[int, Faults] | None = None,
    profile: str | None = None,
    ambient_c: float = 25.0,
) -> FleetSimConfig:
    """`count` miners of one model; miner i gets `faults[i]` if given and seed i.

    With IPS each miner is `127.x.y.z:4028` from `first_ip` up (what pyasic expects); with PORTS
    each is `127.0.0.1:first_port+i` (`first_port` 0: every miner takes a free port).
    """
    faults = faults or {}
    if addressing is Addressing.IPS:
        places = [(host, CGMINER_PORT) for host in loopback_hosts(first_ip, count)]
    else:
        places = [("127.0.0.1", first_port + i if first_port else 0) for i in range(count)]
    miners = tuple(
        MinerSimConfig(
            model=model,
            host=host,
            port=port,
            profile=profile,
            ambient_c=ambient_c,
            seed=i,
            faults=faults.get(i, Faults()),
        )
        for i, (host, port) in enumerate(places)
    )
    return FleetSimConfig(miners=miners)
