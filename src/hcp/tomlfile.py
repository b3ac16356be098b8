"""Reading a TOML file with errors that name the file, the line and the key.

`tomllib` reports syntax errors with a line and column but forgets positions once parsed, so
`key_lines` maps every dotted key (array-of-tables elements indexed: `sites[0].fleet[1]`) to
the line that sets it, and `TomlTable` reads typed values and reports unknown keys there.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import tomllib
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

from hcp.domain.errors import DataError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*([A-Za-z0-9_"'][A-Za-z0-9_\-"'. ]*?)\s*=""")
_SYNTAX_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_LAST_PART = re.compile(r"(\[\d+\]|\.?[^.\[]+)$")
T = TypeVar("T")
log = logging.getLogger(__name__)
_MISSING: Any = object()


def load_toml(path: Path) -> TomlTable:
    """The document at `path` as its root table; DataError for an unreadable file or bad TOML."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1].hex()
        message = f"not UTF-8 text: byte 0x{byte} cannot be decoded (save the file as UTF-8)"
        raise DataError(str(path), message, raw.count(b"\n", 0, exc.start) + 1) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _SYNTAX_AT.search(str(exc))
        line, column = (int(at[1]), int(at[2])) if at else (None, None)
        message = _SYNTAX_AT.sub("", str(exc)).strip()
        raise DataError(str(path), f"invalid TOML: {message}", line, column) from None
    return TomlTable(path, key_lines(text), data, "")


def _parts(dotted: str) -> list[str]:
    """The keys of a dotted key (quoted keys holding a dot are not supported)."""
    return [p.strip().strip("\"'") for p in dotted.split(".")]


def key_lines(text: str) -> dict[str, int]:
    """Dotted path -> 1-based line of every table header and `key = value` in `text`."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    prefix = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            prefix = _resolve(_parts(header[2]), header[1] == "[[", counts)
            lines.setdefault(prefix, number)
        elif key := _KEY.match(line):
            dotted = ".".join(_parts(key[1]))
            lines.setdefault(f"{prefix}.{dotted}" if prefix else dotted, number)
    return lines


def _resolve(parts: list[str], is_array: bool, counts: dict[str, int]) -> str:
    """The indexed path of a header: earlier arrays of tables resolve to their last element."""
    path = ""
    for i, part in enumerate(parts):
        path = f"{path}.{part}" if path else part
        if i == len(parts) - 1 and is_array:
            counts[path] = counts.get(path, 0) + 1
        if path in counts:
            path = f"{path}[{counts[path] - 1}]"
    return path


class TomlTable:
    """One table of the document at dotted path `where`; read each key once, then `finish()`
    to reject keys nobody read (typos)."""

    def __init__(self, path: Path, lines: dict[str, int], data: dict[str, Any], where: str):
        self.path, self._lines, self._data, self.where = path, lines, data, where
        self._read: set[str] = set()

    def key(self, key: str) -> str:
        """The dotted path of `key` in this table."""
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, message: str) -> DataError:
        """A DataError about `key`, at its line, or else at the nearest line above it that is
        known (its table's, or the key holding an inline table: `fleet = [{...}, {...}]`)."""
        line = next((self._lines[k] for k in _outward(self.key(key)) if k in self._lines), None)
        return DataError(str(self.path), f"{self.key(key)}: {message}", line)

    def warn(self, key: str, message: str) -> None:
        """Log a warning about `key` at WARNING, worded and placed like `error`."""
        log.warning("%s", self.error(key, message))

    def _did_you_mean(self, key: str) -> str:
        unread = [k for k in self._data if k not in self._read]
        close = difflib.get_close_matches(key, unread, n=1)
        return f"; did you mean {close[0]}?" if close else ""

    def has(self, key: str) -> bool:
        return key in self._data

    def names(self) -> list[str]:
        """The keys of this table, in file order."""
        return list(self._data)

    def optional(self, key: str, kind: type[T]) -> T | None:
        """The value of `key` (of `kind`), None when absent."""
        if key not in self._data:
            self._read.add(key)
            return None
        return self.get(key, kind)

    def get(self, key: str, kind: type[T], default: T = _MISSING) -> T:
        """The value of `key`, which must be of `kind` (an int is accepted for a float)."""
        self._read.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, f"missing (required){self._did_you_mean(key)}")
            return default
        value = self._data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(key, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def number(
        self,
        key: str,
        default: float = _MISSING,
        *,
        minimum: float | None = None,
        above: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """A finite float (`minimum` and `maximum` inclusive, `above` exclusive bounds): TOML's
        `inf` and `nan` are refused, as no setting means anything by them."""
        value = self.get(key, float, default)
        if not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        if above is not None and value <= above:
            raise self.error(key, f"must be > {above}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum:g}, got {value:g}")
        return value

    def integer(self, key: str, default: int = _MISSING, *, minimum: int | None = None) -> int:
        """An int at least `minimum`."""
        value = self.get(key, int, default)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def range(
        self, key: str, minimum: float = 0.0, maximum: float = math.inf
    ) -> tuple[float, float]:
        """A [low, high] pair of finite numbers with minimum <= low <= high <= maximum."""
        value = self.get(key, list)
        if len(value) != 2 or not all(_is_number(v) for v in value):
            raise self.error(key, f"expected [low, high], got {value!r}")
        if not all(math.isfinite(v) for v in value):
            raise self.error(key, f"expected finite numbers, got {value!r}")
        low, high = float(value[0]), float(value[1])
        if not minimum <= low <= high:
            raise self.error(key, f"expected {minimum} <= low <= high, got {value!r}")
        if high > maximum:
            raise self.error(key, f"high must be <= {maximum:g}, got {value!r}")
        return low, high

    def datetime(self, key: str) -> datetime:
        """A timezone-aware date-time (a TOML offset date-time or an ISO-8601 string)."""
        self._read.add(key)
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            raise self.error(key, "missing (required)")
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.error(key, f"not an ISO-8601 date-time: {value!r}") from None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            shown = value.isoformat() if isinstance(value, date | time) else repr(value)
            message = f"expected a date-time with a UTC offset (e.g. ...T00:00:00Z), got {shown}"
            raise self.error(key, message)
        return value

    def path_value(self, key: str) -> Path:
        """A file path, relative to the TOML file's folder; it must exist."""
        return self.resolve(key, self.get(key, str))

    def resolve(self, key: str, name: str) -> Path:
        """`name` (the value of `key`) relative to the TOML file's folder; it must exist."""
        found = (self.path.parent / name).resolve()
        if not found.exists():
            raise self.error(key, f"no such file: {found}")
        return found

    def table(self, key: str) -> TomlTable | None:
        """The sub-table `key`, or None when absent."""
        if key not in self._data:
            self._read.add(key)
            return None
        value = self.get(key, dict)
        return TomlTable(self.path, self._lines, value, self.key(key))

    def tables(self, key: str) -> Iterator[TomlTable]:
        """Each table of the array of tables `key` (none when absent)."""
        for i, value in enumerate(self.get(key, list, [])):
            if not isinstance(value, dict):
                raise self.error(key, f"expected [[{self.key(key)}]] tables, got {value!r}")
            yield TomlTable(self.path, self._lines, value, f"{self.key(key)}[{i}]")

    def finish(self) -> None:
        """DataError at the first key of this table that was never read."""
        for key in self._data:
            if key not in self._read:
                raise self.error(key, "unknown key")


def _outward(dotted: str) -> Iterator[str]:
    """`dotted` and each path holding it, nearest first: `a[0].b`, `a[0]`, `a`."""
    while dotted:
        yield dotted
        dotted = _LAST_PART.sub("", dotted)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind_name(kind: type) -> str:
    names: dict[type, str] = {
        str: "a string",
        float: "a number",
        int: "an integer",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }
    return names.get(kind, kind.__name__)
