"""Reading market CSV files (plain or gzip) with every value traceable to its file, line and
column, and `Repair`: the record of a documented fix applied to bad data."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import zlib
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


def _open_binary(path: Path) -> gzip.GzipFile | io.BufferedReader:
    """The bytes of `path`, gunzipped when it starts with gzip's magic."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else path.open("rb")


@contextmanager
def _open_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """`path` as UTF-8 text (a leading BOM dropped), gunzipped when it starts with gzip's magic.

    Damage found while the caller reads (bytes that are not UTF-8, a truncated or corrupt gzip
    stream, a path that cannot be read such as a directory) is a DataError naming the file, so
    a bad file never ends in a traceback and the caller never returns what it read so far.
    """
    try:
        with (
            _open_binary(path) as binary,
            io.TextIOWrapper(binary, "utf-8-sig", newline="") as text,
        ):
            yield text
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex()
        message = f"not UTF-8 text: byte 0x{byte} cannot be decoded (save the file as UTF-8)"
        raise DataError(str(path), message, _undecodable_line(path)) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(str(path), f"damaged gzip file: {exc}") from None
    except OSError as exc:
        raise DataError(str(path), f"cannot read the file: {exc.strerror or exc}") from None


def _undecodable_line(path: Path) -> int | None:
    """The 1-based line holding the first bytes that are not UTF-8 (None if it cannot tell).

    The text decoder reports a position in its read-ahead buffer, not a line, so the file is
    scanned again line by line; this costs a second read only for a file that already failed.
    """
    try:
        with _open_binary(path) as binary:
            for number, line in enumerate(binary, start=1):
                try:
                    line.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    return number
    except (EOFError, zlib.error, OSError):
        pass
    return None


def _rows(text: io.TextIOWrapper, path: str) -> Iterator[tuple[int, list[str]]]:
    """Each CSV row of `text` with its 1-based line (the row's last line when a quoted field spans
    several); csv's own complaints, e.g. a field over its size limit after an unclosed quote,
    become a DataError at the line reached."""
    reader = csv.reader(text)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV: {exc}", reader.line_num) from None


def _header(path: str, row: list[str]) -> tuple[str, ...]:
    """The stripped column names of the first line.

    DataError for a name given twice: a lookup by name would silently take the first of the
    two. Blank names may repeat (no one can ask for a column by an empty name).
    """
    header = tuple(name.strip() for name in row)
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise DataError(path, f"duplicate column {name!r} in the header", 1, name)
        seen.add(name)
    return header


def read_header(path: Path) -> tuple[str, ...]:
    """The column names on the first line of the CSV at `path` (DataError for a repeated one)."""
    with _open_text(path) as text:
        _, first = next(_rows(text, str(path)), (1, []))
        return _header(str(path), first)


def read_table(path: Path, only: tuple[str, frozenset[str]] | None = None) -> Table:
    """The CSV at `path` (gzip-compressed or plain UTF-8, optional BOM); blank lines skipped.

    With `only=(column, values)` just the rows whose `column` is one of `values` are kept (a long
    file stays small in memory) and `Table.seen` holds every value that column took.
    DataError for a missing header, a column named twice, a row whose field count differs from
    the header's, and for a file that cannot be read to its end (see `_open_text`).
    """
    with _open_text(path) as text:
        rows = _rows(text, str(path))
        header = _header(str(path), next(rows, (1, []))[1])
        if not header:
            raise DataError(str(path), "empty file: no header line", 1)
        table = Table(str(path), header, [], [])
        pick, wanted = (
            (None, frozenset[str]()) if only is None else (table.column(only[0]), only[1])
        )
        for line, row in rows:
            if not row:
                continue
            if len(row) != len(header):
                message = f"{len(row)} fields where the header has {len(header)}"
                raise DataError(str(path), message, line)
            if pick is not None:
                table.seen.add(row[pick])
                if row[pick] not in wanted:
                    continue
            table.rows.append(row)
            table.lines.append(line)
    return table


def parse_float(text: str, table: Table, i: int, column: str) -> float:
    """`text` of data row `i` as a float; NaN when missing (empty, "NaN", "NA"...).

    DataError naming file, line and column for text that is not a number or is infinite;
    that includes what float() takes but a CSV never means as a number: digit-group
    underscores ("1_000") and non-ASCII digits.
    """
    text = text.strip()
    if text in _MISSING:
        return math.nan
    try:
        if "_" in text or not text.isascii():
            raise ValueError(text)
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
