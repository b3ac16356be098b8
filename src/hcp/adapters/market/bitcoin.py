"""Bitcoin daily figures (`date,difficulty,fees_btc_per_day,btc_usd`, extra columns ignored),
as a table of days and broadcast onto intervals by UTC date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from hcp.adapters.market.csvtable import Repair, Table, read_table
from hcp.adapters.market.timeline import IntArray, TimedColumn, carry_forward, timed_column
from hcp.domain.market import BitcoinDays, FloatArray

BITCOIN_COLUMNS = ("difficulty", "fees_btc_per_day", "btc_usd")
_DAY_S = 86_400


def read_bitcoin_daily(path: Path) -> dict[str, TimedColumn]:
    """Difficulty, fees (BTC/day) and price (USD) per UTC day, as columns timed at 00:00 UTC.

    DataError for a bad date, text in a number column, a duplicate or unsorted date, and for
    values that cannot be right: difficulty or price ≤ 0, negative fees. Empty values stay NaN
    (`bitcoin_days` forward-fills them within its limit).
    """
    table = read_table(path)
    days = [_day_start(table, i, text) for i, text in enumerate(table.texts("date"))]
    columns = {}
    for name in BITCOIN_COLUMNS:
        columns[name] = timed_column(
            table.path, name, "date", days, table.floats(name), table.lines
        )
        _check_positive(columns[name], allow_zero=name == "fees_btc_per_day")
    return columns


def _day_start(table: Table, i: int, text: str) -> int:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise table.where(i, f"not a YYYY-MM-DD date: {text!r}", "date") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _check_positive(column: TimedColumn, *, allow_zero: bool) -> None:
    values = column.values
    bad = np.flatnonzero((values < 0) | ((values == 0) & (not allow_zero)))
    if bad.size:
        i = int(bad[0])
        limit = "≥ 0" if allow_zero else "> 0"
        raise column.error(i, f"{column.name} must be {limit}, got {values[i]}")


def bitcoin_days(
    columns: dict[str, TimedColumn], start_s: int, end_s: int, max_fill_days: int
) -> tuple[BitcoinDays, list[Repair]]:
    """The daily figures of every UTC day of [start_s, end_s) (epoch seconds).

    A missing day or empty value takes the previous day's value (the series are daily
    snapshots and difficulty is a step function), up to `max_fill_days` in a row, also past the
    file's last day; each fill is returned as a `Repair`. DataError beyond that limit, or when
    the days begin before the file's first day.
    """
    if max_fill_days < 0:
        raise ValueError(f"max_fill_days must be ≥ 0, got {max_fill_days}")
    points = np.arange(start_s // _DAY_S, (end_s - 1) // _DAY_S + 1, dtype=np.int64) * _DAY_S
    limit = f"max_fill_days={max_fill_days}"
    values, repairs = {}, []
    for name, column in columns.items():
        values[name], age = carry_forward(column, points, max_fill_days * _DAY_S, limit)
        filled = int(np.count_nonzero(age))
        if filled:
            how = f"forward-filled from the previous day ({limit})"
            repairs.append(Repair(column.path, f"days without {name}", how, filled))
    days = BitcoinDays(
        first=datetime.fromtimestamp(int(points[0]), UTC).date(),
        difficulty=values["difficulty"],
        fees_btc_per_day=values["fees_btc_per_day"],
        btc_usd=values["btc_usd"],
    )
    return days, repairs


def on_intervals(days: BitcoinDays, starts: IntArray) -> dict[str, FloatArray]:
    """Each figure for the UTC day of every interval start (epoch seconds)."""
    first = int(datetime(days.first.year, days.first.month, days.first.day, tzinfo=UTC).timestamp())
    index = (starts - first) // _DAY_S
    return {name: getattr(days, name)[index] for name in BITCOIN_COLUMNS}
