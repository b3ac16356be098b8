"""Pure translators: raw LuxOS/CGMiner RPC payloads in, canonical readings out.

Nothing here does I/O, so every function is tested on recorded payloads. A payload that lacks
what a translator needs, or gives it as a non-finite number (JSON NaN or Infinity, which the
wire decoder lets through), raises `MalformedReply`; a STATUS "E" block raises `CommandRejected`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hcp.adapters.devices.errors import CommandRejected, MalformedReply
from hcp.domain.devices import AsicProfile
from hcp.domain.telemetry import AsicReading, MinerState

Payload = Mapping[str, Any]

DEFAULT_HOT_C = 90.0
"""LuxOS's default `Hot` threshold, used when the miner does not answer `tempctrl`."""
LOW_HASHRATE_RATIO = 0.8
"""A mining miner below this share of its boards' nominal hashrate is reported as a problem."""
_OK_STATUSES = {"S", "I", "W"}
_FLOAT_INT = 2**53
"""Integers below this in size convert to a float exactly, and cannot overflow it."""


@dataclass(frozen=True, slots=True)
class Board:
    """One hashboard as `devs` reports it."""

    index: int
    status: str
    ramping: bool
    temperature_c: float
    nominal_ths: float

    @property
    def alive(self) -> bool:
        return self.status == "Alive"


def check_status(device: str, command: str, payload: Payload) -> None:
    """Raise CommandRejected if the reply's STATUS block says error ("E") or fatal ("F")."""
    block = first(device, payload, "STATUS")
    status = block.get("STATUS")
    if status in _OK_STATUSES:
        return
    if status in ("E", "F"):
        code = block.get("Code")
        message = str(block.get("Msg", "no message"))
        raise CommandRejected(device, command, code if isinstance(code, int) else None, message)
    raise MalformedReply(device, f"{command}: unknown STATUS {status!r}")


def split_joined(device: str, payload: Payload, commands: Iterable[str]) -> dict[str, Payload]:
    """The per-command replies of a `cmd1+cmd2` request, each checked for an error status."""
    replies: dict[str, Payload] = {}
    for command in commands:
        part = payload.get(command)
        if type(part) is not list or not part or not isinstance(part[0], dict):
            raise MalformedReply(device, f"joined reply has no {command!r} part")
        check_status(device, command, part[0])
        replies[command] = part[0]
    return replies


def section(device: str, payload: Payload, name: str) -> list[Mapping[str, Any]]:
    """The list of objects under `name` (e.g. "SUMMARY"); MalformedReply when it is absent,
    not a list, or holds anything but objects.

    This and `first` run for every section of every poll of every miner, so they test with
    `dict` (what JSON decodes to; an ABC check costs several times more) and plain loops."""
    items = payload.get(name)
    if type(items) is list:
        for item in items:
            if not isinstance(item, dict):
                break
        else:
            return items
    raise MalformedReply(device, f"reply has no {name} list")


def first(device: str, payload: Payload, name: str) -> Mapping[str, Any]:
    """The first entry of section `name`."""
    items = section(device, payload, name)
    if not items:
        raise MalformedReply(device, f"reply has an empty {name} list")
    return items[0]


def number(device: str, entry: Mapping[str, Any], key: str) -> float:
    """A finite numeric field (some firmwares send numbers as strings). NaN, Infinity and
    integers beyond a float's range are malformed: no reading is made of them."""
    value: Any = entry.get(key)
    kind = type(value)
    if kind is float:  # what nearly every reply holds: no conversion, only the finite test
        if math.isfinite(value):
            return float(value)
    elif kind is int and -_FLOAT_INT < value < _FLOAT_INT:
        return float(value)
    if isinstance(value, bool) or value is None:
        raise MalformedReply(device, f"field {key!r} is missing or not a number")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MalformedReply(device, f"field {key!r} is not a number: {value!r}") from None
    if not math.isfinite(result):
        raise MalformedReply(device, f"field {key!r} is not a finite number: {value!r}")
    return result


def session_id(device: str, logon_reply: Payload) -> str:
    """The SessionID a `logon` reply grants."""
    value = first(device, logon_reply, "SESSION").get("SessionID")
    if not isinstance(value, str) or not value:
        raise MalformedReply(device, "logon reply has no SessionID")
    return value


def hashrate_ths(device: str, summary: Payload) -> float:
    """Current hashrate in TH/s from `summary` (LuxOS's `GHS 5s`, or CGMiner's `MHS 5s`)."""
    return _hashrate_ths(device, first(device, summary, "SUMMARY"))


def _hashrate_ths(device: str, entry: Mapping[str, Any]) -> float:
    if "GHS 5s" in entry:
        return number(device, entry, "GHS 5s") / 1e3
    return number(device, entry, "MHS 5s") / 1e6


def power(device: str, power_reply: Payload) -> tuple[float, bool]:
    """Wall power in W and whether the PSU is on, from `power`."""
    entry = first(device, power_reply, "POWER")
    psu = entry.get("PSU", True)
    if not isinstance(psu, bool):
        raise MalformedReply(device, f"field 'PSU' is not a boolean: {psu!r}")
    return number(device, entry, "Watts"), psu


def boards(device: str, devs: Payload) -> list[Board]:
    """Every hashboard listed by `devs`."""
    return [_board(device, i, entry) for i, entry in enumerate(section(device, devs, "DEVS"))]


def _board(device: str, index: int, entry: Mapping[str, Any]) -> Board:
    """One `devs` entry; its position stands in for a missing `ASC`, and a nominal hashrate
    that is not a JSON number for an unknown one (0)."""
    nominal_mhs = entry.get("Nominal MHS")
    known = type(nominal_mhs) is float or type(nominal_mhs) is int  # a JSON number (no bool)
    status = entry.get("Status", "Unknown")
    return Board(  # positional: this runs for every board of every miner at each poll
        int(number(device, entry, "ASC")) if "ASC" in entry else index,
        status if type(status) is str else str(status),
        entry.get("IsRamping") is True,
        number(device, entry, "Temperature"),
        number(device, entry, "Nominal MHS") / 1e6 if known else 0.0,
    )


def hot_threshold_c(device: str, tempctrl: Payload | None) -> float:
    """LuxOS's `Hot` temperature in °C (the default when `tempctrl` was not read)."""
    if tempctrl is None:
        return DEFAULT_HOT_C
    return number(device, first(device, tempctrl, "TEMPCTRL"), "Hot")


def active_profile(device: str, config: Payload) -> str | None:
    """The profile name `config` reports, if any."""
    value = first(device, config, "CONFIG").get("Profile")
    return value if isinstance(value, str) and value else None


def asic_profiles(device: str, profiles: Payload) -> tuple[AsicProfile, ...]:
    """Every profile the miner offers, as (name, TH/s, W)."""
    return tuple(
        AsicProfile(
            name=str(entry.get("Profile Name", "")),
            hashrate_ths=number(device, entry, "Hashrate"),
            power_w=number(device, entry, "Watts"),
        )
        for entry in section(device, profiles, "PROFILES")
    )


def miner_state(psu_on: bool, hashboards: list[Board], hashrate: float) -> MinerState:
    """Sleeping when the PSU is off, waking while boards ramp, fault when nothing hashes."""
    if not psu_on:
        return MinerState.SLEEPING
    if any(b.ramping for b in hashboards):
        return MinerState.WAKING
    if hashrate <= 0 or not any(b.alive for b in hashboards):
        return MinerState.FAULT
    return MinerState.MINING


def problems(
    state: MinerState, hashboards: list[Board], hashrate: float, hot_c: float
) -> tuple[str, ...]:
    """What is wrong, in words: dead boards, overheating, no or low hashrate."""
    found = [f"board {b.index} {b.status.lower()}" for b in hashboards if not b.alive]
    hottest = max((b.temperature_c for b in hashboards if b.alive), default=0.0)
    if hottest >= hot_c:
        found.append(f"overheating: {hottest:.0f} °C >= {hot_c:.0f} °C")
    if state is MinerState.FAULT and all(b.alive for b in hashboards):
        found.append("not hashing")
    nominal = sum(b.nominal_ths for b in hashboards)
    if state is MinerState.MINING and nominal > 0 and hashrate < LOW_HASHRATE_RATIO * nominal:
        found.append(f"hashrate {hashrate:.0f} TH/s is {100 * hashrate / nominal:.0f}% of nominal")
    return tuple(found)


def asic_reading(device: str, at: datetime, replies: Mapping[str, Payload]) -> AsicReading:
    """One canonical reading from the replies to summary, power, config, devs (+ tempctrl)."""
    for needed in ("summary", "power", "config", "devs"):
        if needed not in replies:
            raise MalformedReply(device, f"no {needed} reply to read from")
    summary = first(device, replies["summary"], "SUMMARY")
    rate = _hashrate_ths(device, summary)
    watts, psu_on = power(device, replies["power"])
    hashboards = boards(device, replies["devs"])
    state = miner_state(psu_on, hashboards, rate)
    temperatures = [b.temperature_c for b in hashboards if b.alive and b.temperature_c > 0]
    return AsicReading(
        device=device,
        at=at,
        state=state,
        hashrate_ths=rate,
        power_w=watts,
        temperature_c=max(temperatures, default=None),
        profile=active_profile(device, replies["config"]),
        accepted_shares=int(number(device, summary, "Accepted")),
        rejected_shares=int(number(device, summary, "Rejected")),
        problems=problems(
            state, hashboards, rate, hot_threshold_c(device, replies.get("tempctrl"))
        ),
    )
