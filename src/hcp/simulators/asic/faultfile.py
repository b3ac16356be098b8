"""Fault files for `hcp sim asic --faults FILE`: TOML tables of `Faults` per miner.

Each table is named by a miner index (0-based, as `hcp sim asic` lists the miners) or an
inclusive index range, and sets any of the `Faults` fields; a miner in no table is healthy:

    [3]                    # miner 3 refuses connections
    offline = true

    [10-19]                # miners 10 to 19
    dead_boards = 1        # 0..3 of the three hashboards dead
    overheating = true

    [20]
    malformed_replies = true
    reply_delay_s = 2.5    # seconds before answering
    reset_connections = false

A miner may appear in one table only. Mistakes are DataErrors naming the file, the line and the
key (`faults.toml:7: 10-19.dead_board: unknown fault; did you mean dead_boards?`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from pathlib import Path

from hcp.simulators.asic.config import BOARDS, Faults
from hcp.tomlfile import TomlTable, load_toml

FAULT_KEYS = tuple(field.name for field in dataclasses.fields(Faults))
_SELECTOR = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")


def load_faults(path: Path, count: int) -> dict[int, Faults]:
    """Miner index -> its faults, for a fleet of `count` miners; DataError on any mistake."""
    root = load_toml(path)
    faults: dict[int, Faults] = {}
    claimed: dict[int, str] = {}
    for selector in root.names():
        first, last = _indexes(root, selector, count)
        table = root.table(selector)  # a DataError when it is not a table
        assert table is not None  # present: the key came from root.names()
        miner_faults = _faults(table)
        for index in range(first, last + 1):
            if index in claimed:
                message = f"miner {index} already has faults from [{claimed[index]}]"
                raise root.error(selector, message)
            claimed[index] = selector
            faults[index] = miner_faults
    root.finish()
    return faults


def _indexes(root: TomlTable, selector: str, count: int) -> tuple[int, int]:
    """The inclusive index range a table name selects, within the fleet."""
    match = _SELECTOR.match(selector)
    if match is None:
        raise root.error(selector, "not a miner index or range (like [3] or [10-19])")
    first = int(match[1])
    last = int(match[2]) if match[2] is not None else first
    if last < first:
        raise root.error(selector, f"empty range: {first} is after {last}")
    if last >= count:
        raise root.error(selector, f"no miner {last}: the fleet has miners 0-{count - 1}")
    return first, last


def _faults(table: TomlTable) -> Faults:
    for key in table.names():
        if key not in FAULT_KEYS:
            close = difflib.get_close_matches(key, FAULT_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"faults: {', '.join(FAULT_KEYS)}"
            raise table.error(key, f"unknown fault; {hint}")
    dead_boards = table.integer("dead_boards", 0, minimum=0)
    if dead_boards > BOARDS:
        raise table.error("dead_boards", f"must be 0..{BOARDS}, got {dead_boards}")
    reply_delay_s = table.number("reply_delay_s", 0.0, minimum=0.0)
    if not math.isfinite(reply_delay_s):
        raise table.error("reply_delay_s", f"must be a finite number, got {reply_delay_s}")
    faults = Faults(
        offline=table.get("offline", bool, False),
        dead_boards=dead_boards,
        overheating=table.get("overheating", bool, False),
        malformed_replies=table.get("malformed_replies", bool, False),
        reply_delay_s=reply_delay_s,
        reset_connections=table.get("reset_connections", bool, False),
    )
    table.finish()
    return faults
