"""ERCOT price files: real-time settlement point prices in the wide layout of ../shared/data
or ERCOT's native long layout, and hourly day-ahead prices. Prices are USD/MWh."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from hcp.adapters.market.csvtable import Table, parse_times, read_header, read_table
from hcp.adapters.market.timeline import TimedColumn, iso, timed_column
from hcp.domain.errors import DataError

WIDE_TIME = "interval_start_utc"
WIDE_IGNORED = frozenset({WIDE_TIME, "interval_start_local"})
LONG_COLUMNS = (
    "DeliveryDate",
    "DeliveryHour",
    "DeliveryInterval",
    "SettlementPointName",
    "SettlementPointPrice",
    "DSTFlag",
)
# Long-layout rows are timed by these fields together; errors about a row's time name them.
LONG_TIME = "DeliveryDate/DeliveryHour/DeliveryInterval/DSTFlag"
# ERCOT's own files (NP6-905-CD) list each load zone twice an interval: type LZ, the price a
# load in the zone pays, and LZEW (energy-weighted). A point listed under several types is
# read from the rows of one of them, LZ unless the caller chooses another.
LONG_TYPE = "SettlementPointType"
DEFAULT_POINT_TYPE = "LZ"
ERCOT_ZONE = ZoneInfo("America/Chicago")
_INTERVAL_S = 900


def read_electricity(
    path: Path, nodes: Sequence[str], point_type: str = DEFAULT_POINT_TYPE
) -> dict[str, TimedColumn]:
    """Real-time prices (USD/MWh) of `nodes` from an ERCOT file in either layout, told apart by
    its header; DataError for an unknown settlement point or a header of neither layout.
    `point_type`: which rows of a long file to read for a point it lists under several
    `SettlementPointType`s (see `read_long`)."""
    if not nodes:
        raise ValueError("nodes: name at least one settlement point")
    header = read_header(path)
    if WIDE_TIME in header:
        return read_wide(path, nodes)
    if set(LONG_COLUMNS) <= set(header):
        return read_long(path, nodes, point_type)
    expected = f"{WIDE_TIME!r} + one column per settlement point, or {', '.join(LONG_COLUMNS)}"
    raise DataError(str(path), f"not an ERCOT price file: expected {expected}", 1)


def _unknown_point(path: str, node: str, known: set[str], column: str | None) -> DataError:
    names = sorted(known)
    listed = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    line = 1 if column is None else None
    return DataError(path, f"unknown settlement point {node!r} (known: {listed})", line, column)


def read_wide(path: Path, nodes: Sequence[str]) -> dict[str, TimedColumn]:
    """Nodes from the wide layout: `interval_start_utc` then one column per settlement point
    (`interval_start_local` is ignored: the UTC column is unambiguous)."""
    table = read_table(path)
    known = set(table.header) - WIDE_IGNORED
    for node in nodes:
        if node not in known:
            raise _unknown_point(table.path, node, known, None)
    times = parse_times(table, WIDE_TIME)
    return {
        node: timed_column(table.path, node, WIDE_TIME, times, table.floats(node), table.lines)
        for node in nodes
    }


def read_long(
    path: Path, nodes: Sequence[str], point_type: str = DEFAULT_POINT_TYPE
) -> dict[str, TimedColumn]:
    """Nodes from ERCOT's native long layout: one row per interval and settlement point, timed
    by local date, hour ending 1–24, 15-minute interval 1–4 and DSTFlag (Y on the repeated
    fall-back hour, which is in standard time).

    With a `SettlementPointType` column, a point listed under several types (a load zone: LZ
    and LZEW) is read from its rows of type `point_type`; DataError when none of its types is
    that one, and a repeated interval names the type of its rows.
    """
    table = read_table(path, only=("SettlementPointName", frozenset(nodes)))
    for node in nodes:
        if node not in table.seen:
            raise _unknown_point(table.path, node, table.seen, "SettlementPointName")
    typed = LONG_TYPE in table.header
    if typed:
        table = _of_one_type(table, nodes, point_type)
    names, times = table.texts("SettlementPointName"), long_times(table)
    if typed:
        _check_repeats(table, names, times)
    return _split(table, LONG_TIME, names, times, "SettlementPointPrice", nodes)


def _of_one_type(table: Table, nodes: Sequence[str], point_type: str) -> Table:
    """`table` with only the rows of type `point_type` for each node listed under several."""
    names = table.texts("SettlementPointName")
    types = [text.strip() for text in table.texts(LONG_TYPE)]
    keep: list[int] = []
    for node in nodes:
        rows = [i for i, name in enumerate(names) if name == node]
        kinds = list(dict.fromkeys(types[i] for i in rows))
        if len(kinds) > 1:
            if point_type not in kinds:
                second = next(i for i in rows if types[i] == kinds[1])
                message = (
                    f"{node} is listed under several SettlementPointTypes "
                    f"({', '.join(kinds)}) and none is {point_type!r}: choose the type to read "
                    "(market.settlement_point_type)"
                )
                raise table.where(second, message, LONG_TYPE)
            rows = [i for i in rows if types[i] == point_type]
        keep += rows
    keep.sort()
    rows_kept = [table.rows[i] for i in keep]
    return replace(table, rows=rows_kept, lines=[table.lines[i] for i in keep])


def _check_repeats(table: Table, names: list[str], times: list[int]) -> None:
    """DataError at the first row whose point already has a row for its interval, naming the
    interval, the other row's line and the type of both."""
    types = table.texts(LONG_TYPE)
    seen: dict[tuple[str, int], int] = {}
    for i, key in enumerate(zip(names, times, strict=True)):
        if key in seen:
            first = seen[key]
            message = (
                f"duplicate timestamp {iso(key[1])} for {key[0]} "
                f"(SettlementPointType {types[i].strip()}; line {table.lines[first]} has it too, "
                f"type {types[first].strip()})"
            )
            raise table.where(i, message, LONG_TIME)
        seen[key] = i


def _split(
    table: Table,
    time_column: str,
    names: list[str],
    times: list[int],
    price_column: str,
    wanted: Sequence[str],
) -> dict[str, TimedColumn]:
    """One checked column per settlement point in `wanted` from a long table's rows.

    Each is named `price_column (point)`, e.g. `SettlementPointPrice (HB_WEST)`: errors about
    its values then name the file's real column, and still say which point's series it is.
    """
    names_, times_ = np.array(names), np.array(times, dtype=np.int64)
    prices, lines = table.floats(price_column), np.array(table.lines)
    columns = {}
    for name in wanted:
        rows = names_ == name
        label = f"{price_column} ({name})"
        columns[name] = timed_column(
            table.path, label, time_column, times_[rows], prices[rows], lines[rows]
        )
    return columns


def long_times(table: Table) -> list[int]:
    """Interval starts (UTC epoch seconds) of every row of a long-layout table."""
    dates, hours = table.texts("DeliveryDate"), table.texts("DeliveryHour")
    intervals, flags = table.texts("DeliveryInterval"), table.texts("DSTFlag")
    hour_starts: dict[tuple[str, str, str], int] = {}
    times = []
    for i, key in enumerate(zip(dates, hours, flags, strict=True)):
        if key not in hour_starts:
            hour_starts[key] = _hour_start(table, i, *key)
        interval = _bounded_int(table, i, intervals[i], "DeliveryInterval", 4)
        times.append(hour_starts[key] + (interval - 1) * _INTERVAL_S)
    return times


def _bounded_int(table: Table, i: int, text: str, column: str, top: int) -> int:
    """`text` ("7" or "07:00") as an integer within 1..top, else DataError; ASCII digits only,
    as int() would also take "1_2" (12) or non-ASCII digits."""
    head = text.strip().split(":")[0]
    value = int(head) if head.isascii() and head.isdigit() else 0
    if not 1 <= value <= top:
        raise table.where(i, f"expected a whole number 1..{top}, got {text!r}", column)
    return value


def _hour_start(table: Table, i: int, date_text: str, hour_text: str, flag_text: str) -> int:
    """UTC start of the local hour ending `hour_text` on `date_text` (MM/DD/YYYY, Central)."""
    try:
        day = datetime.strptime(date_text.strip(), "%m/%d/%Y")
    except ValueError:
        raise table.where(i, f"not a MM/DD/YYYY date: {date_text!r}", "DeliveryDate") from None
    flag = flag_text.strip().upper()
    if flag not in ("Y", "N"):
        raise table.where(i, f"DSTFlag must be Y or N, got {flag_text!r}", "DSTFlag")
    local = day + timedelta(hours=_bounded_int(table, i, hour_text, "DeliveryHour", 24) - 1)
    moment = local.replace(tzinfo=ERCOT_ZONE, fold=int(flag == "Y"))
    utc = moment.astimezone(UTC)
    if utc.astimezone(ERCOT_ZONE).replace(tzinfo=None) != local:
        message = f"hour ending {hour_text.strip()} does not exist on {day:%Y-%m-%d} (DST starts)"
        raise table.where(i, message, "DeliveryHour")
    if flag == "Y" and moment.utcoffset() == local.replace(tzinfo=ERCOT_ZONE).utcoffset():
        message = "DSTFlag Y on an hour that is not the repeated fall-back hour"
        raise table.where(i, message, "DSTFlag")
    return int(utc.timestamp())


def read_day_ahead(path: Path) -> dict[str, TimedColumn]:
    """Day-ahead prices (USD/MWh) per settlement point from a long file with columns
    `interval_start_utc`, `settlement_point`, `da_spp_usd_per_mwh`; a missing price is an error
    (a day-ahead price that is not in the file is simply unknown)."""
    table = read_table(path)
    points = table.texts("settlement_point")
    columns = _split(
        table,
        WIDE_TIME,
        points,
        parse_times(table, WIDE_TIME),
        "da_spp_usd_per_mwh",
        list(dict.fromkeys(points)),
    )
    for column in columns.values():
        missing = np.flatnonzero(np.isnan(column.values))
        if missing.size:
            raise column.error(int(missing[0]), "empty or NaN day-ahead price")
    return columns
