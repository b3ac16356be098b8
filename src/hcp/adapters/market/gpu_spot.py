"""GPU spot prices (USD/GPU-hour) from a CSV: quotes at irregular times (`timestamp_utc`) or
one per day (`date`), each holding until the next, put onto intervals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from hcp.adapters.market.csvtable import Repair, Table, parse_times, read_table
from hcp.adapters.market.timeline import IntArray, TimedColumn, carry_forward, timed_column
from hcp.domain.errors import DataError
from hcp.domain.market import FloatArray

TIME_COLUMNS = ("timestamp_utc", "date")


@dataclass(frozen=True, slots=True)
class GpuSpotCsv:
    """Where one GPU family's spot price is: `price_column` of the CSV at `path`.

    In a long file with one row per GPU and time, `gpu_column` names the column that tells the
    GPUs apart and `gpu` the value whose rows to read (e.g. `gpu`, `H100_80GB_SXM5`). A quote
    holds for at most `max_age`; an interval further from the last quote is a DataError.
    """

    path: Path
    family: str
    price_column: str
    gpu_column: str | None = None
    gpu: str | None = None
    max_age: timedelta = timedelta(days=2)


def read_gpu_spot(source: GpuSpotCsv) -> TimedColumn:
    """The quotes of `source` in USD/GPU-hour (NaN where a row has none); DataError for an
    unknown GPU, text or a negative price, or unsorted or duplicate times."""
    only = None
    if source.gpu_column is not None:
        only = (source.gpu_column, frozenset({source.gpu or ""}))
    table = read_table(source.path, only)
    if only is not None and source.gpu not in table.seen:
        known = ", ".join(sorted(table.seen))
        message = f"no rows for GPU {source.gpu!r} (known: {known})"
        raise DataError(table.path, message, None, source.gpu_column)
    time_column = _time_column(table)
    prices = table.floats(source.price_column)
    negative = np.flatnonzero(prices < 0)
    if negative.size:
        i = int(negative[0])
        raise table.where(i, f"negative price {prices[i]}", source.price_column)
    times = parse_times(table, time_column)
    return timed_column(table.path, source.price_column, time_column, times, prices, table.lines)


def _time_column(table: Table) -> str:
    for name in TIME_COLUMNS:
        if name in table.header:
            return name
    found = ", ".join(table.header)
    raise DataError(table.path, f"missing a time column {' or '.join(TIME_COLUMNS)} ({found})", 1)


def gpu_spot_on_intervals(
    source: GpuSpotCsv, starts: IntArray, end_s: int
) -> tuple[FloatArray, list[Repair]]:
    """The quote in force at every interval start (epoch seconds), and a `Repair` counting the
    rows within [starts[0], end_s) whose empty price was bridged by the previous quote."""
    column = read_gpu_spot(source)
    max_age_s = source.max_age // timedelta(seconds=1)
    values, _ = carry_forward(column, starts, max_age_s, f"max_age={source.max_age}")
    inside = (column.times >= starts[0]) & (column.times < end_s)
    empty = int(np.count_nonzero(inside & np.isnan(column.values)))
    repairs = []
    if empty:
        what = f"empty {source.price_column} quotes for {source.family}"
        how = f"previous quote carried forward (max_age={source.max_age})"
        repairs.append(Repair(column.path, what, how, empty))
    return values, repairs
