"""The CGMiner RPC dialect of LuxOS: parse a request, run its command(s), build the reply.

A request is one JSON object `{"command": "...", "parameter": "..."}`. Commands joined with `+`
each get the same parameter and their replies come back keyed by command name, as in CGMiner.
Commands that change the miner take a session id as their first parameter (LuxOS sessions).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from hcp.simulators.asic import replies
from hcp.simulators.asic.miner import HOT_C, MinerSim
from hcp.simulators.asic.replies import Payload, frame

CODE_INVALID_COMMAND = 14
CODE_INVALID_JSON = 23
CODE_SESSION_BUSY = 402
"""LuxOS's answer to `logon` while another session is alive (as Luxor's own client expects)."""
CODE_INVALID_SESSION = 403  # ours
CODE_INVALID_PARAMETER = 404  # ours
CODE_UNKNOWN_PROFILE = 405  # ours
CODE_ATM_ENABLED = 406  # ours
"""`profileset` while ATM is on: LuxOS refuses it (ATM owns the profile until turned off)."""

_WATTS = re.compile(r"^(\d+(?:\.\d+)?)(W|kW)$")
_STEP = re.compile(r"^[+-][0-9]+$")
_INTEGER = re.compile(r"^[0-9]{1,9}$")
_NUMBER = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{1,9})?$")
ATM_KEYS = (
    "enabled",
    "startup_minutes",
    "post_ramp_minutes",
    "temp_window",
    "min_profile",
    "max_profile",
    "prevent_oc",
)
"""What `atmset` takes (LuxOS API docs); `prevent_oc` is not stored, it acts on turning off."""
MAX_ATM_MINUTES = 65_535
"""Upper bound of `startup_minutes` and `post_ramp_minutes` (ours: LuxOS documents none)."""


class CommandError(Exception):
    """A command the miner refuses; answered as a STATUS "E" block with `code` and `msg`."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def answer(sim: MinerSim, request: bytes, now: datetime) -> Payload:
    """The reply to one raw request, after stepping the miner to `now`."""
    sim.step(now)
    try:
        command, args = parse_request(request)
    except CommandError as error:
        return _error(sim, error)
    if "+" not in command:
        return run(sim, command, args, now)
    # A command named twice in one join runs once, as in CGMiner (a second `logoff` would
    # refuse the session the first one ended, and its reply would replace the first's).
    joined: Payload = {}
    for name in command.split("+"):
        if name not in joined:
            joined[name] = [run(sim, name, args, now)]
    joined["id"] = 1
    return joined


def load_json(text: bytes) -> Any:
    """The JSON value in `text` (orjson, then json for what orjson refuses: NaN, Infinity,
    integers beyond 64 bits); ValueError when it is not JSON at all."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text.decode("utf-8"))  # its errors are ValueErrors too


def parse_request(request: bytes) -> tuple[str, list[str]]:
    """The command and its comma-separated parameters; CommandError for anything else."""
    try:
        body = load_json(request.rstrip(b"\x00\r\n "))
    except ValueError:
        raise CommandError(CODE_INVALID_JSON, "Invalid JSON") from None
    command = body.get("command") if isinstance(body, dict) else None
    if not isinstance(command, str):
        raise CommandError(CODE_INVALID_JSON, "Missing JSON 'command'")
    parameter = body.get("parameter")
    if parameter is None or parameter == "":
        return command.strip(), []
    return command.strip(), [arg.strip() for arg in str(parameter).split(",")]


def run(sim: MinerSim, command: str, args: list[str], now: datetime) -> Payload:
    """The framed reply of one command (an error block when it is refused or unknown)."""
    try:
        query = QUERIES.get(command)
        if query is not None:
            return query(sim)
        action = ACTIONS.get(command)
        if action is None:
            raise CommandError(CODE_INVALID_COMMAND, "Invalid command")
        return action(sim, args, now)
    except CommandError as error:
        return _error(sim, error)


def _error(sim: MinerSim, error: CommandError) -> Payload:
    return frame(sim, error.code, error.msg, {}, status="E")


def _in_session(sim: MinerSim, args: list[str], now: datetime) -> list[str]:
    """The arguments after a valid session id; refuses the command without one."""
    if not args or not sim.sessions.use(args[0], now):
        raise CommandError(CODE_INVALID_SESSION, "Invalid session id")
    return args[1:]


def logon(sim: MinerSim, args: list[str], now: datetime) -> Payload:
    session_id = sim.sessions.logon(now)
    if session_id is None:
        raise CommandError(CODE_SESSION_BUSY, "Another session is active")
    return frame(sim, 316, "Session created", {"SESSION": [{"SessionID": session_id}]})


def session(sim: MinerSim, args: list[str], now: datetime) -> Payload:
    active = sim.sessions.active(now) or ""
    return frame(sim, 319, "Session information", {"SESSION": [{"SessionID": active}]})


def logoff(sim: MinerSim, args: list[str], now: datetime) -> Payload:
    if not args or not sim.sessions.logoff(args[0], now):
        raise CommandError(CODE_INVALID_SESSION, "Invalid session id")
    return frame(sim, 317, "Session ended", {"SESSION": [{"SessionID": args[0]}]})


def curtail(sim: MinerSim, args: list[str], now: datetime) -> Payload:
    action = _in_session(sim, args, now)
    if action[:1] == ["sleep"]:
        sim.sleep(now)
        done = "sleep mode"
    elif action[:1] == ["wakeup"]:
        sim.wake(now)
        done = "wake up"
    else:
        raise CommandError(CODE_INVALID_PARAMETER, "Invalid curtail action (sleep or wakeup)")
    return frame(sim, 335, "Curtailment command sent", {"CURTAIL": [{"Action": done}]})


def profileset(sim: MinerSim, args: list[str], now: datetime) -> Payload:
    rest = _in_session(sim, args, now)
    if sim.atm.enabled:
        raise CommandError(
            CODE_ATM_ENABLED,
            "Cannot set profile while ATM is enabled; disable it first (atmset enabled=false)",
        )
    # LuxOS still accepts the old form `session,board,profile`; the board is ignored.
    if len(rest) > 1 and rest[0] in {"0", "1", "2", "3"}:
        rest = rest[1:]
    if not rest or not rest[0]:
        raise CommandError(CODE_INVALID_PARAMETER, "Missing profile")
    name = _profile_name(sim, rest[0])
    try:
        profile = sim.set_profile(name, now)
    except KeyError:
        raise CommandError(CODE_UNKNOWN_PROFILE, f"Unknown profile {name!r}") from None
    entry = {"Board": 0, "FrequencyStep": 5, "Profile": profile.name, "VoltageStep": 0.05}
    return frame(sim, 321, "Profile Set", {"PROFILE": [entry]})


def _profile_name(sim: MinerSim, selector: str) -> str:
    """A profile named outright, picked by power (`3000W` or `3kW`: the highest within it), or
    by its step from the stock profile (`+1`, `-2`), as the `profiles` reply numbers them."""
    match = _WATTS.match(selector)
    if match is not None:
        watts = float(match.group(1)) * (1000 if match.group(2) == "kW" else 1)
        return sim.profile_within(watts).name
    if _STEP.match(selector):
        try:
            return sim.profile_at_step(int(selector)).name
        except KeyError:
            raise CommandError(CODE_UNKNOWN_PROFILE, f"No profile at step {selector}") from None
    return selector


def atmset(sim: MinerSim, args: list[str], now: datetime) -> Payload:
    """Change the ATM keys given (any subset, any order); one bad key or value refuses the
    whole command and changes nothing."""
    settings = dict(_key_value(item) for item in _in_session(sim, args, now))
    if not settings:
        raise CommandError(CODE_INVALID_PARAMETER, "No ATM settings given")
    current = sim.atm
    changes: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ("enabled", "prevent_oc"):
            changes[key] = _boolean(key, value)
        elif key in ("startup_minutes", "post_ramp_minutes"):
            changes[key] = _minutes(key, value)
        elif key == "temp_window":
            changes[key] = _temp_window(value)
        else:
            changes[key] = _atm_profile(sim, key, value)
    prevent_oc = bool(changes.pop("prevent_oc", False))
    updated = dataclasses.replace(current, **changes)
    if updated.min_profile and _power(sim, updated.min_profile) > _power(sim, updated.max_profile):
        raise CommandError(
            CODE_INVALID_PARAMETER,
            f"min_profile {updated.min_profile!r} is above max_profile {updated.max_profile!r}",
        )
    sim.set_atm(updated)
    turned_off = current.enabled and not updated.enabled
    if turned_off and prevent_oc and sim.profile.power_w > sim.model.stock.power_w:
        sim.set_profile(sim.model.stock_profile, now)  # no overclock left behind by ATM
    return frame(sim, 340, "Advanced Thermal Management configuration updated", {})


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise CommandError(CODE_INVALID_PARAMETER, f"Invalid ATM setting {item!r} (key=value)")
    if key not in ATM_KEYS:
        keys = ", ".join(ATM_KEYS)
        raise CommandError(CODE_INVALID_PARAMETER, f"Unknown ATM key {key!r} (keys: {keys})")
    return key, value


def _invalid(key: str, value: str, expected: str) -> CommandError:
    return CommandError(CODE_INVALID_PARAMETER, f"Invalid {key} {value!r}: expected {expected}")


def _boolean(key: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise _invalid(key, value, "true or false")
    return value == "true"


def _minutes(key: str, value: str) -> int:
    if not _INTEGER.match(value) or int(value) > MAX_ATM_MINUTES:
        raise _invalid(key, value, f"whole minutes from 0 to {MAX_ATM_MINUTES}")
    return int(value)


def _temp_window(value: str) -> float:
    if not _NUMBER.match(value) or float(value) > HOT_C:
        raise _invalid("temp_window", value, f"°C from 0 to {HOT_C:g} (the Hot temperature)")
    return float(value)


def _atm_profile(sim: MinerSim, key: str, value: str) -> str:
    """A hashing profile by name or by step (+1, -2); empty only for min_profile (unbounded)."""
    if not value and key == "min_profile":
        return ""
    names = [p.name for p in sim.hashing_profiles()]
    if _STEP.match(value):
        try:
            return sim.profile_at_step(int(value)).name
        except KeyError:
            raise _invalid(key, value, f"a step within the profiles list ({len(names)})") from None
    if value not in names:
        raise _invalid(key, value, f"a profile ({', '.join(names)}) or a step (+1, -2)")
    return value


def _power(sim: MinerSim, name: str) -> float:
    return sim.model.profile(name).power_w


QUERIES: dict[str, Callable[[MinerSim], Payload]] = {
    "version": replies.version,
    "summary": replies.summary,
    "stats": replies.stats,
    "estats": replies.stats,
    "pools": replies.pools,
    "groups": replies.groups,
    "devs": replies.devs,
    "edevs": replies.devs,
    "config": replies.config,
    "profiles": replies.profiles,
    "power": replies.power,
    "tempctrl": replies.tempctrl,
    "fans": replies.fans,
    "atm": replies.atm,
}
ACTIONS: dict[str, Callable[[MinerSim, list[str], datetime], Payload]] = {
    "logon": logon,
    "logoff": logoff,
    "session": session,
    "curtail": curtail,
    "profileset": profileset,
    "atmset": atmset,
}
