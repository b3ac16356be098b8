"""Time-indexed columns read from files, and the pure steps that put them on a fixed grid:
order checks, step inference, forward-fill with an age limit, and resampling to a step.

Times are whole seconds since the Unix epoch (UTC) in int64 arrays; a value applies from its
time until the next one (interval-start convention, as in the files).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from hcp.domain.errors import DataError
from hcp.domain.market import FloatArray

IntArray = npt.NDArray[np.int64]


def iso(seconds: int | np.integer) -> str:
    """UTC seconds since the epoch as ISO-8601 with a `Z`."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: int | np.integer) -> str:
    """A duration in seconds, readably (`0:45:00`, `3 days, 0:00:00`)."""
    return str(timedelta(seconds=int(seconds)))


@dataclass(frozen=True, slots=True)
class TimedColumn:
    """One quantity from one file: `values` (NaN = missing) at strictly increasing `times`
    (UTC epoch seconds), row `i` read from line `lines[i]` of `path`. Build with `timed_column`."""

    path: str
    name: str
    time_column: str
    times: IntArray
    values: FloatArray
    lines: IntArray

    def error(self, i: int, message: str, *, at_time: bool = False) -> DataError:
        """A DataError about row `i`, in the time column or (default) the value column."""
        column = self.time_column if at_time else self.name
        return DataError(self.path, message, int(self.lines[i]), column)


def timed_column(
    path: str,
    name: str,
    time_column: str,
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    lines: npt.ArrayLike,
) -> TimedColumn:
    """A checked `TimedColumn`: DataError at the first duplicate or out-of-order time, or when
    there are no rows at all."""
    column = TimedColumn(
        path,
        name,
        time_column,
        np.asarray(times, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        np.asarray(lines, dtype=np.int64),
    )
    if len(column.times) == 0:
        raise DataError(path, f"no data rows for {name}", None, name)
    backwards = np.flatnonzero(np.diff(column.times) <= 0)
    if backwards.size:
        i = int(backwards[0]) + 1
        kind = "duplicate" if column.times[i] == column.times[i - 1] else "out-of-order"
        message = (
            f"{kind} timestamp {iso(column.times[i])} "
            f"(line {column.lines[i - 1]} has {iso(column.times[i - 1])})"
        )
        raise column.error(i, message, at_time=True)
    return column


def infer_step(column: TimedColumn) -> int:
    """The column's native step in seconds: its most common time difference (robust to gaps);
    on a tie, the one that divides most differences, then the one that comes first."""
    if len(column.times) < 2:
        raise DataError(column.path, "need at least two rows to tell the step", None, column.name)
    diffs = np.diff(column.times)
    steps, first, counts = np.unique(diffs, return_index=True, return_counts=True)
    divides = [int(np.count_nonzero(diffs % step == 0)) for step in steps]
    best = max(range(len(steps)), key=lambda k: (counts[k], divides[k], -first[k]))
    return int(steps[best])


def check_grid(column: TimedColumn, origin: int, step_s: int) -> None:
    """DataError at the first time that is not `origin` plus a whole number of `step_s`."""
    off = np.flatnonzero((column.times - origin) % step_s)
    if off.size:
        i = int(off[0])
        message = f"{iso(column.times[i])} is off the file's {span(step_s)} grid from {iso(origin)}"
        raise column.error(i, message, at_time=True)


def carry_forward(
    column: TimedColumn, at: IntArray, max_age_s: int, limit: str
) -> tuple[FloatArray, IntArray]:
    """The value in force at each time of `at` (the last non-missing value at or before it) and
    its age in seconds (0 where a row has a value at exactly that time).

    DataError when `at` starts before the first row, when there is no earlier value to carry,
    or when a value would be older than `max_age_s` (`limit` says which setting allows that).
    """
    if at[0] < column.times[0]:
        message = f"window starts {iso(at[0])}, before the file's first row {iso(column.times[0])}"
        raise column.error(0, message, at_time=True)
    rows = np.arange(len(column.times))
    last_valid = np.maximum.accumulate(np.where(np.isnan(column.values), -1, rows))
    row_at = np.searchsorted(column.times, at, side="right") - 1
    source = last_valid[row_at]
    age = np.where(source >= 0, at - column.times[source], np.iinfo(np.int64).max)
    stale = np.flatnonzero(age > max_age_s)
    if stale.size:
        k = int(stale[0])
        raise _stale_error(column, int(at[k]), int(row_at[k]), int(source[k]), limit)
    return column.values[source], age


def _stale_error(column: TimedColumn, at: int, row: int, source: int, limit: str) -> DataError:
    """Why no value can stand for time `at`: a missing value, a gap, or the file's end."""
    since = "no earlier value" if source < 0 else f"last value {iso(column.times[source])}"
    if column.times[row] == at:
        return column.error(row, f"empty or NaN value ({since}; {limit})")
    if row + 1 < len(column.times):
        message = f"gap before this row: no row for {iso(at)} ({since}; {limit})"
        return column.error(row + 1, message, at_time=True)
    message = f"file ends at {iso(column.times[row])}: no row for {iso(at)} ({since}; {limit})"
    return column.error(row, message, at_time=True)


def grid_points(start_s: int, end_s: int, step_s: int, origin: int) -> IntArray:
    """The times `origin + k * step_s` of every grid interval that overlaps [start_s, end_s)."""
    first = origin + (start_s - origin) // step_s * step_s
    return np.arange(first, end_s, step_s, dtype=np.int64)


def to_step(
    values: FloatArray, points: IntArray, native_s: int, start_s: int, step_s: int, n: int
) -> FloatArray:
    """Values on a native grid (`points`, `native_s` apart) as `n` intervals of `step_s` from
    `start_s`: each finer interval takes the native value it lies in; a coarser interval takes
    the time-weighted mean of the native intervals it holds. One step must divide the other
    and the target intervals must not straddle native ones (the caller checks)."""
    if step_s <= native_s:
        index = (start_s + np.arange(n, dtype=np.int64) * step_s - points[0]) // native_s
        picked: FloatArray = values[index]
        return picked
    per = step_s // native_s
    first = (start_s - int(points[0])) // native_s
    means: FloatArray = values[first : first + n * per].reshape(n, per).mean(axis=1)
    return means


def lines_up(step_s: int, native_s: int, offset_s: int) -> bool:
    """Whether intervals of `step_s` starting `offset_s` after a native grid point can be built
    from native intervals of `native_s` without straddling any: one step divides the other and
    the offset is a whole number of the finer step."""
    if step_s <= 0 or (step_s % native_s and native_s % step_s):
        return False
    return offset_s % min(step_s, native_s) == 0
