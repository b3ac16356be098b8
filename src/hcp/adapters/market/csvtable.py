"""Reading market CSV files (plain or gzip) with every value traceable to its file, line and
column, and `Repair`: the record of a documented fix applied to bad data."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hcp.domain.errors import DataError
from hcp.domain.market import FloatArray

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
# Spellings of a missing value: repairable (or an error), never a number.
_MISSING = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"})


@dataclass(frozen=True, slots=True)
class Repair:
    """A documented fix applied to bad input data: in `path`, `count` × `what`, fixed by `how`."""

    path: str
    what: str
    how: str
    count: int

    def __str__(self) -> str:
        return f"{self.path}: {self.count} × {self.what}: {self.how}"


def report(repairs: Iterable[Repair]) -> list[Repair]:
    """Log each repair at WARNING (repairs are never silent) and return them as a list."""
    done = list(repairs)
    for repair in done:
        log.warning("data repaired: %s", repair)
    return done


@dataclass(frozen=True, slots=True)
class Table:
    """A CSV file's header and data rows; `lines[i]` is the 1-based line of `rows[i]`."""

    path: str
    header: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]
    seen: set[str] = field(default_factory=set)

    def column(self, name: str) -> int:
        """Index of the column called `name`; DataError (line 1) when the file lacks it."""
        try:
            return self.header.index(name)
        except ValueError:
            found = ", ".join(self.header)
            raise DataError(
                self.path, f"missing required column {name!r} (found: {found})", 1, name
            ) from None

    def texts(self, name: str) -> list[str]:
        """The raw text of every data row in column `name`."""
        index = self.column(name)
        return [row[index] for row in self.rows]

    def floats(self, name: str) -> FloatArray:
        """Column `name` as floats; NaN marks a missing value, anything else not numeric raises."""
        return np.array(
            [parse_float(text, self, i, name) for i, text in enumerate(self.texts(name))],
            dtype=np.float64,
        )

    def where(self, i: int, message: str, column: str | None = None) -> DataError:
        """A DataError about data row `i` (0-based) and `column`."""
        return DataError(self.path, message, self.lines[i], column)


@contextmanager
def _open_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """`path` as UTF-8 text (a leading BOM dropped), gunzipped when it starts with gzip's magic."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else Path.open
    with opener(path, "rb") as binary, io.TextIOWrapper(binary, "utf-8-sig", newline="") as text:
        yield text


def read_header(path: Path) -> tuple[str, ...]:
    """The column names on the first line of the CSV at `path`."""
    with _open_text(path) as text:
        return tuple(name.strip() for name in next(csv.reader(text), []))


def read_table(path: Path, only: tuple[str, frozenset[str]] | None = None) -> Table:
    """The CSV at `path` (gzip-compressed or plain UTF-8, optional BOM); blank lines skipped.

    With `only=(column, values)` just the rows whose `column` is one of `values` are kept (a long
    file stays small in memory) and `Table.seen` holds every value that column took.
    DataError for a missing header or a row whose field count differs from the header's.
    """
    with _open_text(path) as text:
        reader = csv.reader(text)
        header = tuple(name.strip() for name in next(reader, []))
        if not header:
            raise DataError(str(path), "empty file: no header line", 1)
        table = Table(str(path), header, [], [])
        pick, wanted = (
            (None, frozenset[str]()) if only is None else (table.column(only[0]), only[1])
        )
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                message = f"{len(row)} fields where the header has {len(header)}"
                raise DataError(str(path), message, reader.line_num)
            if pick is not None:
                table.seen.add(row[pick])
                if row[pick] not in wanted:
                    continue
            table.rows.append(row)
            table.lines.append(reader.line_num)
    return table


def parse_float(text: str, table: Table, i: int, column: str) -> float:
    """`text` of data row `i` as a float; NaN when missing (empty, "NaN", "NA"...).

    DataError naming file, line and column for text that is not a number or is infinite.
    """
    text = text.strip()
    if text in _MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise table.where(i, f"not a number: {text!r}", column) from None
    if math.isinf(value):
        raise table.where(i, f"infinite value {text!r}", column)
    return value


def parse_utc_seconds(text: str, table: Table, i: int, column: str) -> int:
    """An ISO-8601 timestamp (a date alone means its 00:00) as whole seconds since the epoch.

    A timestamp without an offset is taken as UTC (the columns read here are UTC by name).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise table.where(i, f"not an ISO-8601 timestamp: {text!r}", column) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def parse_times(table: Table, column: str) -> list[int]:
    """Column `column` of every data row as UTC seconds since the epoch (`parse_utc_seconds`)."""
    return [parse_utc_seconds(text, table, i, column) for i, text in enumerate(table.texts(column))]
