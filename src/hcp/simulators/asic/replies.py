"""The read-only replies a LuxOS miner gives, built from a `MinerSim`.

Field names follow CGMiner's API and LuxOS's additions to it (LuxOS API docs; what pyasic's
LuxOS backend reads). Status codes are CGMiner's where it has one (summary 11, pools 7, devs 9,
stats 70, config 33, version 22) and LuxOS's where its docs show one; the others (`CODE_*` marked
"ours") are this simulator's own choice.
"""

from __future__ import annotations

from typing import Any

from hcp.domain.devices import AsicModel, AsicProfile
from hcp.simulators.asic.config import BOARDS
from hcp.simulators.asic.miner import DANGEROUS_C, HOT_C, TARGET_C, MinerSim

Payload = dict[str, Any]

LUXMINER_VERSION = "2024.6.1.000000-hcpsim"
DESCRIPTION = f"LUXminer {LUXMINER_VERSION}"
API_VERSION = "3.7"
CHIPS_PER_BOARD = 108
"""Chips reported per board; only pyasic's chip-count check looks at it (an S21 has 108)."""
FANS = 4
POOL_URL = "stratum+tcp://127.0.0.1:3333"
CODE_POWER, CODE_PROFILES, CODE_FANS, CODE_TEMPCTRL, CODE_GROUPS = 350, 351, 352, 353, 354  # ours


def frame(
    sim: MinerSim, code: int, msg: str, data: dict[str, list[Payload]], status: str = "S"
) -> Payload:
    """A whole single-command reply as of the miner's last step: STATUS block (`status` "S"
    or "E", `code`, `msg`), the data sections, `id` (as CGMiner sends).

    Each command frames its own reply once it has acted, with no intermediate section object
    to copy from: a fleet poll asks every miner for five replies every few seconds."""
    block = {
        "STATUS": status,
        "When": int(sim.now),
        "Code": code,
        "Msg": msg,
        "Description": DESCRIPTION,
    }
    return {"STATUS": [block], **data, "id": 1}


def miner_type(model: AsicModel) -> str:
    """The `Type` string a miner reports, e.g. "Antminer S21" (what pyasic picks a class by)."""
    key = (model.manufacturer, model.name)
    found = _TYPES.get(key)
    if found is None:  # four times per read of every miner: worked out once per model
        is_antminer = model.manufacturer.lower() == "bitmain"
        if is_antminer and not model.name.lower().startswith("antminer"):
            found = f"Antminer {model.name}"
        else:
            found = model.name
        _TYPES[key] = found
    return found


_TYPES: dict[tuple[str, str], str] = {}


def version(sim: MinerSim) -> Payload:
    entry = {
        "LUXminer": LUXMINER_VERSION,
        "API": API_VERSION,
        "Miner": LUXMINER_VERSION,
        "Type": miner_type(sim.model),
        "CompileTime": "2024-06-01T00:00:00Z",
    }
    return frame(sim, 22, "LUXminer versions", {"VERSION": [entry]})


def summary(sim: MinerSim) -> Payload:
    average_ths, elapsed_s = sim.average_hashrate_ths, sim.elapsed_s
    ghs_av = round(average_ths * 1000, 2)
    accepted, rejected = sim.accepted, sim.rejected
    shares = accepted + rejected
    rejected_percent = round(_percent(rejected, shares), 4)
    entry = _SUMMARY.copy()
    entry["Elapsed"] = int(elapsed_s)
    entry["GHS 5s"] = round(sim.hashrate_ths * 1000, 2)
    entry["GHS av"] = entry["GHS 30m"] = ghs_av
    entry["Getworks"] = entry["Local Work"] = shares
    entry["Accepted"] = accepted
    entry["Rejected"] = rejected
    entry["Utility"] = round(accepted / max(elapsed_s, 1.0) * 60, 2)
    entry["Total MH"] = round(average_ths * 1e6 * elapsed_s, 0)
    entry["Device Rejected%"] = entry["Pool Rejected%"] = rejected_percent
    entry["Last getwork"] = int(sim.now)
    return frame(sim, 11, "Summary", {"SUMMARY": [entry]})


_SUMMARY: Payload = {
    "Elapsed": None,
    "GHS 5s": None,
    "GHS av": None,
    "GHS 30m": None,
    "Found Blocks": 0,
    "Getworks": None,
    "Accepted": None,
    "Rejected": None,
    "Hardware Errors": 0,
    "Utility": None,
    "Discarded": 0,
    "Stale": 0,
    "Get Failures": 0,
    "Local Work": None,
    "Remote Failures": 0,
    "Network Blocks": 0,
    "Total MH": None,
    "Device Hardware%": 0.0,
    "Device Rejected%": None,
    "Pool Rejected%": None,
    "Pool Stale%": 0.0,
    "Last getwork": None,
}
"""A `summary` entry's keys in CGMiner's order and the values that never change; `summary`
fills in the others (None here) on a copy. On Python 3.11 a dict literal of more than 16 keys
is built key by key, growing as it goes; copying a ready one costs half as much."""


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def devs(sim: MinerSim) -> Payload:
    # Each live board does an equal share of the miner's work and a dead one none, so boards
    # differ only in their number and connector: one entry is built for the live boards and
    # one for the dead, then each board gets a copy (a fleet poll asks every miner for this).
    alive_boards = sim.alive_boards
    live = _board_entry(sim, True, 1 / alive_boards) if alive_boards else {}
    dead = _board_entry(sim, False, 0.0) if alive_boards < BOARDS else {}
    entries = []
    for board in range(BOARDS):
        # Boards die from the last one down, as MinerSim.board_alive has it.
        entry = (live if board < alive_boards else dead).copy()
        entry["ASC"] = entry["ID"] = board
        entry["Connector"] = _CONNECTORS[board]
        entries.append(entry)
    return frame(sim, 9, _DEVS_MSG, {"DEVS": entries})


_DEVS_MSG = f"{BOARDS} ASC(s)"
_CONNECTORS = tuple(f"J{board + 1}" for board in range(BOARDS))


def _board_entry(sim: MinerSim, alive: bool, share: float) -> Payload:
    """The `devs` entry of a board alive or dead doing `share` of the miner's work; its number
    and connector are left for `devs` to fill in."""
    mhs = round(sim.hashrate_ths * 1e6 * share, 2)
    entry = _BOARD.copy()
    entry["Status"] = "Alive" if alive else "Dead"
    entry["Temperature"] = round(sim.temperature_c, 1) if alive else 0.0
    entry["MHS av"] = round(sim.average_hashrate_ths * 1e6 * share, 2)
    entry["MHS 5s"] = entry["MHS 1m"] = entry["MHS 5m"] = entry["MHS 15m"] = mhs
    entry["Accepted"] = int(sim.accepted * share)
    entry["Rejected"] = int(sim.rejected * share)
    entry["Device Elapsed"] = int(sim.elapsed_s)
    entry["Board"] = miner_type(sim.model)
    entry["IsRamping"] = sim.ramping and alive
    entry["Nominal MHS"] = round(sim.ideal_hashrate_ths * 1e6 / BOARDS, 2)
    entry["Profile"] = sim.profile.name
    return entry


_BOARD: Payload = {
    "ASC": None,
    "Name": "BTM",
    "ID": None,
    "Enabled": "Y",
    "Status": None,
    "Temperature": None,
    "MHS av": None,
    "MHS 5s": None,
    "MHS 1m": None,
    "MHS 5m": None,
    "MHS 15m": None,
    "Accepted": None,
    "Rejected": None,
    "Hardware Errors": 0,
    "Device Elapsed": None,
    "Board": None,
    "Connector": None,
    "IsRamping": None,
    "IsUserShutdown": False,
    "Nominal MHS": None,
    "Profile": None,
}
"""A `devs` entry's keys in order and the values that never change, filled in on a copy (as
`_SUMMARY` is)."""


def stats(sim: MinerSim) -> Payload:
    header = {
        "CGMiner": "4.11.1",
        "Miner": LUXMINER_VERSION,
        "CompileTime": "2024-06-01T00:00:00Z",
        "Type": miner_type(sim.model),
    }
    detail: Payload = {
        "STATS": 0,
        "ID": "BC50",
        "Elapsed": int(sim.elapsed_s),
        "GHS 5s": round(sim.hashrate_ths * 1000, 2),
        "GHS av": round(sim.average_hashrate_ths * 1000, 2),
        "miner_count": BOARDS,
        "fan_num": FANS,
        "temp_num": BOARDS,
        "total_rateideal": round(sim.ideal_hashrate_ths * 1000, 2),
        "total_rate": round(sim.hashrate_ths * 1000, 2),
        "rate_unit": "GH",
        "total_acn": CHIPS_PER_BOARD * sim.alive_boards,
    }
    for board in range(BOARDS):
        detail.update(_chain_stats(sim, board))
    return frame(sim, 70, "CGMiner stats", {"STATS": [header, detail]})


def _chain_stats(sim: MinerSim, board: int) -> Payload:
    n = board + 1
    alive = sim.board_alive(board)
    pcb_c = round(sim.temperature_c) if alive else 0
    chip_c = pcb_c + 10 if alive else 0
    rate_ghs = sim.hashrate_ths * 1000 / sim.alive_boards if alive else 0.0
    return {
        f"chain_acn{n}": CHIPS_PER_BOARD if alive else 0,
        f"chain_rate{n}": f"{rate_ghs:.2f}",
        f"chain_rateideal{n}": round(sim.ideal_hashrate_ths * 1000 / BOARDS, 2),
        f"temp{n}": pcb_c,
        f"temp_pcb{n}": "-".join(str(pcb_c + d) for d in (-2, 0, 1, -1)),
        f"temp_chip{n}": "-".join(str(chip_c + d) for d in (-2, 0, 1, -1)) if alive else "0-0-0-0",
    }


def pools(sim: MinerSim) -> Payload:
    pool = {
        "POOL": 0,
        "GROUP": 0,
        "URL": POOL_URL,
        "Status": "Alive",
        "Priority": 0,
        "Quota": 1,
        "Stratum Active": sim.psu_on,
        "Stratum URL": POOL_URL,
        "User": "hcp.sim",
        "Accepted": sim.accepted,
        "Rejected": sim.rejected,
        "Stale": 0,
        "Get Failures": 0,
        "Remote Failures": 0,
        "Last Share Time": int(sim.now),
    }
    return frame(sim, 7, "1 Pool(s)", {"POOLS": [pool]})


def groups(sim: MinerSim) -> Payload:
    group = {"GROUP": 0, "Name": "Default", "Quota": 1, "Strategy": "Failover"}
    return frame(sim, CODE_GROUPS, "1 Group(s)", {"GROUPS": [group]})


def config(sim: MinerSim) -> Payload:
    psu_on = sim.psu_on
    entry = {
        "ASC Count": BOARDS,
        "PGA Count": 0,
        "Pool Count": 1,
        "Strategy": "Failover",
        "Log Interval": 5,
        "Device Code": "",
        "OS": "Linux",
        "Hotplug": "None",
        "Model": miner_type(sim.model),
        "Profile": sim.profile.name,
        "MACAddr": sim.mac_address,
        "SerialNumber": sim.serial_number,
        "RedLed": "off",
        "CurtailMode": "None" if psu_on else "Sleep",
        "IsPowerSupplyOn": psu_on,
        "IsAtmEnabled": sim.atm_enabled,
    }
    return frame(sim, 33, "CGMiner config", {"CONFIG": [entry]})


def profiles(sim: MinerSim) -> Payload:
    stock = sim.model.stock
    ordered = sim.hashing_profiles()
    stock_index = next(i for i, p in enumerate(ordered) if p.name == stock.name)
    entries = [_profile(p, stock, i - stock_index) for i, p in enumerate(ordered)]
    return frame(sim, CODE_PROFILES, f"{len(entries)} Profile(s)", {"PROFILES": entries})


def _profile(profile: AsicProfile, stock: AsicProfile, step: int) -> Payload:
    # Frequency tracks hashrate; voltage rises with it (illustrative values, not a model's).
    ratio = profile.hashrate_ths / stock.hashrate_ths
    return {
        "Profile Name": profile.name,
        "Step": str(step),
        "Frequency": round(490 * ratio),
        "Voltage": round(13.0 + 1.5 * (ratio - 1), 2),
        "Hashrate": round(profile.hashrate_ths, 1),
        "Watts": round(profile.power_w),
        "IsTuned": False,
        "IsDynamic": False,
    }


def power(sim: MinerSim) -> Payload:
    return frame(
        sim, CODE_POWER, "Power", {"POWER": [{"Watts": round(sim.power_w), "PSU": sim.psu_on}]}
    )


def tempctrl(sim: MinerSim) -> Payload:
    entry = {"Mode": "Auto", "Target": TARGET_C, "Hot": HOT_C, "Dangerous": DANGEROUS_C}
    return frame(sim, CODE_TEMPCTRL, "Temperature control", {"TEMPCTRL": [entry]})


def fans(sim: MinerSim) -> Payload:
    # Fans chase the target temperature: idle at ambient, flat out at or above it.
    span = max(TARGET_C - sim.config.ambient_c, 1.0)
    speed = round(min(100.0, max(10.0, 100 * (sim.temperature_c - sim.config.ambient_c) / span)))
    entries = [{"FAN": i, "ID": i, "RPM": speed * 60, "Speed": speed} for i in range(FANS)]
    control = [{"Mode": "Auto", "MinFans": FANS, "Speed": -1}]
    return frame(sim, CODE_FANS, f"{FANS} Fan(s)", {"FANS": entries, "FANCTRL": control})


def atm(sim: MinerSim) -> Payload:
    settings = sim.atm
    entry = {
        "Enabled": settings.enabled,
        "MaxProfile": settings.max_profile,
        "MaxProfileStep": _step(sim, settings.max_profile),
        "MinProfile": settings.min_profile,
        "MinProfileStep": _step(sim, settings.min_profile),
        "PostRampMinutes": settings.post_ramp_minutes,
        "StartupMinutes": settings.startup_minutes,
        "TempWindow": settings.temp_window,
    }
    return frame(sim, 339, "ATM configuration values", {"ATM": [entry]})


def _step(sim: MinerSim, name: str) -> str:
    """A profile's step from the stock one as a string ("0", "1", "-2"); "" for none."""
    return str(sim.profile_step(name)) if name else ""
