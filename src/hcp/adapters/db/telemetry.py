"""The telemetry store: raw samples, 1-minute and 1-hour rollups, retention, on SQLite or
PostgreSQL (tables in `hcp.adapters.db.tables`, migration 0004).

Layout and rules:

- Time is integer epoch milliseconds (rounded down); a series is a (device_id, metric) pair,
  numbered once in `telemetry_series` (each store caches the numbers; series are never deleted).
- Writes append to `telemetry_inbox`, which has no key and no index: one transaction per write,
  sqlite3 `executemany` of tuples under BEGIN IMMEDIATE, or a binary COPY on PostgreSQL.
  A merge moves the inbox in bulk, sorted, into `telemetry_samples` (keyed by series then time,
  so a range read is one index seek) and empties it. Why: keyed rows land in their series' page,
  so a 10,000-sample write over 1,000 series dirties ~1,000 pages, each copied to the WAL at
  commit; appending dirties a few, and a merge of 200,000 samples dirties those ~1,000 pages once
  (about 1.7x the ingest rate on SQLite). A store merges after it has written `merge_every`
  samples, and at the start of every rollup. Raw queries read both tables.
- One value per (series, millisecond): a repeated sample is dropped at merge (if two differing
  values share a millisecond, which one is kept is unspecified), and raw queries skip exact
  repeats still waiting in the inbox.
- Rollups, incremental and idempotent: a merge marks every (series, minute) it touches pending;
  `rollup(until)` recomputes each pending minute that has closed (minute end <= until) from its
  raw samples, marks its hour pending, then recomputes each closed pending hour from its minute
  rows. A second run with nothing new changes nothing.
- Late data: a sample for a minute already rolled up marks that minute pending again, so the next
  rollup recomputes the minute and its hour in full. A sample older than the raw retention
  horizon is dropped at merge: its minute's other raw samples are gone, and recomputing the
  minute from it alone would corrupt the rollup.
- Retention deletes whole hours: raw samples, minute rows and hour rows before each policy
  cutoff (floored to the hour), never raw samples of a minute still pending nor minute rows of a
  pending hour (a stalled rollup delays retention; it never loses data it has not rolled up).
- Merges, rollups and retention run one at a time and see a stable inbox: each holds the
  database's write lock (SQLite: BEGIN IMMEDIATE) or, on PostgreSQL, an EXCLUSIVE lock on the
  inbox, which makes concurrent writes wait but not readers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, String, bindparam, select, text

from hcp.adapters.db.engine import chunked
from hcp.adapters.db.tables import TelemetrySeriesRow
from hcp.domain.telemetry import (
    HOUR_MS,
    Point,
    Resolution,
    RetentionPolicy,
    Sample,
    effective_step_ms,
    floor_ms,
    from_epoch_ms,
    resolution_for,
    to_epoch_ms,
)

if TYPE_CHECKING:
    import psycopg

Row = tuple[int, int, float]
SeriesKey = tuple[str, str]
_NO_END_MS = 2**62  # later than any stored sample: `latest` without `until`
MAX_NAME = 64  # telemetry_series.device_id and .metric are VARCHAR(64)

_INBOX_INSERT = "INSERT INTO telemetry_inbox (series_id, at_ms, value) VALUES (?, ?, ?)"
_INBOX_COPY = "COPY telemetry_inbox (series_id, at_ms, value) FROM STDIN (FORMAT BINARY)"
_SERIES_INSERT = text(
    "INSERT INTO telemetry_series (device_id, metric) VALUES (:device_id, :metric) "
    "ON CONFLICT DO NOTHING"
)

_MERGE = [
    text(
        "DELETE FROM telemetry_inbox WHERE at_ms < "
        "(SELECT start_ms FROM telemetry_horizons WHERE resolution = 'raw')"
    ),
    text(
        "INSERT INTO telemetry_pending (resolution, series_id, bucket_start_ms) "
        "SELECT DISTINCT '1m', series_id, (at_ms / 60000) * 60000 FROM telemetry_inbox "
        "WHERE true ON CONFLICT DO NOTHING"
    ),
    text(
        "INSERT INTO telemetry_samples (series_id, at_ms, value) "
        "SELECT series_id, at_ms, value FROM telemetry_inbox WHERE true "
        "ORDER BY series_id, at_ms ON CONFLICT DO NOTHING"
    ),
    text("DELETE FROM telemetry_inbox"),
]

_UPSERT_ROLLUP = """
INSERT INTO telemetry_rollups (series_id, resolution, bucket_start_ms,
    sample_count, value_sum, value_min, value_max, value_last)
{select}
WHERE true
ON CONFLICT (series_id, resolution, bucket_start_ms) DO UPDATE SET
    sample_count = excluded.sample_count, value_sum = excluded.value_sum,
    value_min = excluded.value_min, value_max = excluded.value_max,
    value_last = excluded.value_last
"""

# Each pending closed minute from its raw samples; `last` is the value of the newest sample.
_MINUTES_FROM_RAW = """
SELECT a.series_id, '1m', a.bucket_start_ms, a.n, a.total, a.low, a.high, s.value
FROM (
    SELECT p.series_id, p.bucket_start_ms, COUNT(*) AS n, SUM(x.value) AS total,
        MIN(x.value) AS low, MAX(x.value) AS high, MAX(x.at_ms) AS last_ms
    FROM telemetry_pending AS p
    JOIN telemetry_samples AS x ON x.series_id = p.series_id
        AND x.at_ms >= p.bucket_start_ms AND x.at_ms < p.bucket_start_ms + 60000
    WHERE p.resolution = '1m' AND p.bucket_start_ms <= :closed
    GROUP BY p.series_id, p.bucket_start_ms
) AS a
JOIN telemetry_samples AS s ON s.series_id = a.series_id AND s.at_ms = a.last_ms
"""

# Each pending closed hour from its minute rows; `last` is the newest minute's last.
_HOURS_FROM_MINUTES = """
SELECT a.series_id, '1h', a.bucket_start_ms, a.n, a.total, a.low, a.high, m.value_last
FROM (
    SELECT p.series_id, p.bucket_start_ms, SUM(r.sample_count) AS n, SUM(r.value_sum) AS total,
        MIN(r.value_min) AS low, MAX(r.value_max) AS high, MAX(r.bucket_start_ms) AS last_ms
    FROM telemetry_pending AS p
    JOIN telemetry_rollups AS r ON r.series_id = p.series_id AND r.resolution = '1m'
        AND r.bucket_start_ms >= p.bucket_start_ms
        AND r.bucket_start_ms < p.bucket_start_ms + 3600000
    WHERE p.resolution = '1h' AND p.bucket_start_ms <= :closed
    GROUP BY p.series_id, p.bucket_start_ms
) AS a
JOIN telemetry_rollups AS m ON m.series_id = a.series_id AND m.resolution = '1m'
    AND m.bucket_start_ms = a.last_ms
"""

_ROLLUP = {
    Resolution.MINUTE: text(_UPSERT_ROLLUP.format(select=_MINUTES_FROM_RAW)),
    Resolution.HOUR: text(_UPSERT_ROLLUP.format(select=_HOURS_FROM_MINUTES)),
}
_MARK_HOURS = text(
    "INSERT INTO telemetry_pending (resolution, series_id, bucket_start_ms) "
    "SELECT DISTINCT '1h', series_id, (bucket_start_ms / 3600000) * 3600000 "
    "FROM telemetry_pending WHERE resolution = '1m' AND bucket_start_ms <= :closed "
    "ON CONFLICT DO NOTHING"
)
_DONE = text(
    "DELETE FROM telemetry_pending WHERE resolution = :resolution AND bucket_start_ms <= :closed"
)

# `series_id IN (all series)` lets both databases walk the (series, time) key one series at a
# time instead of scanning the table.
_DELETE_SAMPLES = text(
    "DELETE FROM telemetry_samples "
    "WHERE series_id IN (SELECT id FROM telemetry_series) AND at_ms < :before"
)
_DELETE_ROLLUPS = text(
    "DELETE FROM telemetry_rollups WHERE series_id IN (SELECT id FROM telemetry_series) "
    "AND resolution = :resolution AND bucket_start_ms < :before"
)
_OLDEST_PENDING = text(
    "SELECT MIN(bucket_start_ms) FROM telemetry_pending WHERE resolution = :resolution"
)
_ADVANCE_HORIZON = text(
    "INSERT INTO telemetry_horizons (resolution, start_ms) VALUES (:resolution, :before) "
    "ON CONFLICT (resolution) DO UPDATE SET start_ms = excluded.start_ms "
    "WHERE telemetry_horizons.start_ms < excluded.start_ms"
)

_SERIES_ID = "(SELECT id FROM telemetry_series WHERE device_id = :device AND metric = :metric)"
_QUERY_RAW = text(f"""
SELECT (x.at_ms / :step) * :step AS bucket, COUNT(*), SUM(x.value), MIN(x.value), MAX(x.value)
FROM (
    SELECT at_ms, value FROM telemetry_samples
    WHERE series_id = {_SERIES_ID} AND at_ms >= :start AND at_ms < :end
    UNION
    SELECT at_ms, value FROM telemetry_inbox
    WHERE series_id = {_SERIES_ID} AND at_ms >= :start AND at_ms < :end
) AS x
GROUP BY bucket ORDER BY bucket
""")
_QUERY_ROLLUP = text(f"""
SELECT (bucket_start_ms / :step) * :step AS bucket,
    SUM(sample_count), SUM(value_sum), MIN(value_min), MAX(value_max)
FROM telemetry_rollups
WHERE series_id = {_SERIES_ID} AND resolution = :resolution
    AND bucket_start_ms >= :start AND bucket_start_ms < :end
GROUP BY bucket ORDER BY bucket
""")
_RAW_OF_DEVICES = text("""
SELECT s.device_id, (x.at_ms / :step) * :step AS bucket, AVG(x.value)
FROM (
    SELECT series_id, at_ms, value FROM telemetry_samples
    WHERE series_id IN :series AND at_ms >= :start AND at_ms < :end
    UNION
    SELECT series_id, at_ms, value FROM telemetry_inbox
    WHERE series_id IN :series AND at_ms >= :start AND at_ms < :end
) AS x
JOIN telemetry_series AS s ON s.id = x.series_id
GROUP BY s.device_id, bucket ORDER BY s.device_id, bucket
""").bindparams(bindparam("series", expanding=True))
_SERIES_OF = text(
    "SELECT id FROM telemetry_series WHERE metric = :metric AND device_id IN :devices"
).bindparams(bindparam("devices", expanding=True, type_=String()))
_LATEST = text("""
SELECT s.device_id, s.metric, x.at_ms, x.value
FROM telemetry_series AS s
JOIN telemetry_samples AS x ON x.series_id = s.id AND x.at_ms = (
    SELECT MAX(at_ms) FROM telemetry_samples WHERE series_id = s.id AND at_ms <= :until
)
WHERE :every OR s.device_id IN :devices
UNION ALL
SELECT s.device_id, s.metric, i.at_ms, i.value
FROM (
    SELECT series_id, MAX(at_ms) AS at_ms FROM telemetry_inbox WHERE at_ms <= :until
    GROUP BY series_id
) AS n
JOIN telemetry_inbox AS i ON i.series_id = n.series_id AND i.at_ms = n.at_ms
JOIN telemetry_series AS s ON s.id = n.series_id
WHERE :every OR s.device_id IN :devices
""").bindparams(bindparam("devices", expanding=True, type_=String()))


class TelemetryStore:
    """Telemetry samples on an SQLAlchemy engine; see the module docstring for the rules.

    Safe to share between threads: every call takes its own connection.
    """

    def __init__(self, engine: Engine, *, merge_every: int = 200_000) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._merge_every = merge_every
        self._series: dict[SeriesKey, int] = {}
        self._registering = threading.Lock()
        self._unmerged = 0

    def write(self, samples: Iterable[Sample]) -> None:
        """Store `samples` in one transaction; they can be queried once this returns."""
        rows = self._rows(samples if isinstance(samples, Sequence) else list(samples))
        if not rows:
            return
        with self._engine.begin() as connection:
            if self._sqlite:
                _append_sqlite(connection, rows)
            else:
                _append_postgres(connection, rows)
        self._unmerged += len(rows)
        if self._unmerged >= self._merge_every:
            self.merge()

    def merge(self) -> int:
        """Move the inbox into the keyed samples table; returns the samples added."""
        with self._engine.begin() as connection:
            self._lock(connection)
            added = _merge(connection)
        self._unmerged = 0
        return added

    def rollup(self, until: datetime) -> int:
        """Merge, then compute every pending bucket closed by `until`: minutes from raw samples,
        then hours from minutes. Returns the number of rollup rows written."""
        closed_ms = to_epoch_ms(until)
        with self._engine.begin() as connection:
            self._lock(connection)
            _merge(connection)
            written = _roll(connection, Resolution.MINUTE, closed_ms)
            written += _roll(connection, Resolution.HOUR, closed_ms)
        self._unmerged = 0
        return written

    def apply_retention(self, now: datetime, policy: RetentionPolicy) -> dict[Resolution, int]:
        """Merge, then delete what `policy` no longer keeps at `now`; returns the rows deleted
        per level."""
        cutoffs = policy.cutoffs_ms(now)
        with self._engine.begin() as connection:
            self._lock(connection)
            _merge(connection)  # so that every unmerged sample's minute counts as pending
            cutoffs[Resolution.RAW] = _before_pending(connection, cutoffs, Resolution.MINUTE)
            cutoffs[Resolution.MINUTE] = _before_pending(connection, cutoffs, Resolution.HOUR)
            deleted = {r: _delete_before(connection, r, ms) for r, ms in cutoffs.items()}
        self._unmerged = 0
        return deleted

    def query(
        self, device_id: str, metric: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Point]:
        """Points of one series over [start, end), one per `step` bucket that holds data.

        Reads raw samples for steps under a minute, 1-minute rollups under an hour, else 1-hour
        rollups; the step is rounded up to whole buckets of that level (`effective_step_ms`) and
        `start` down to a step boundary (buckets are aligned to the epoch). Rollups hold only
        closed, rolled-up buckets.
        """
        resolution = resolution_for(step)
        step_ms = effective_step_ms(step)
        params = {
            "device": device_id,
            "metric": metric,
            "resolution": resolution.value,
            "step": step_ms,
            "start": floor_ms(to_epoch_ms(start), step_ms),
            "end": to_epoch_ms(end),
        }
        sql = _QUERY_RAW if resolution is Resolution.RAW else _QUERY_ROLLUP
        with self._engine.connect() as connection:
            return [_point(*row) for row in connection.execute(sql, params)]

    def raw_averages(
        self,
        device_ids: Sequence[str],
        metric: str,
        start: datetime,
        end: datetime,
        step: timedelta = timedelta(seconds=1),
    ) -> dict[str, list[tuple[datetime, float]]]:
        """Raw samples of `metric` for many devices over [start, end), averaged per `step`
        (under a minute) bucket: {device_id: [(bucket start, mean)]} in time order, devices
        without samples left out. One read per `IN_LIST_LIMIT` devices, where `query` would take
        one per device and rescan the unindexed inbox each time."""
        if not device_ids:
            return {}
        step_ms = effective_step_ms(step)
        found: dict[str, list[tuple[datetime, float]]] = {}
        with self._engine.connect() as connection:
            series = [
                series_id
                for devices in chunked(device_ids)
                for series_id in connection.execute(
                    _SERIES_OF, {"metric": metric, "devices": list(devices)}
                ).scalars()
            ]
            window = {
                "step": step_ms,
                "start": floor_ms(to_epoch_ms(start), step_ms),
                "end": to_epoch_ms(end),
            }
            for chunk in chunked(series):
                rows = connection.execute(_RAW_OF_DEVICES, {"series": chunk, **window})
                for device_id, bucket_ms, mean in rows:
                    found.setdefault(device_id, []).append((from_epoch_ms(int(bucket_ms)), mean))
        return found

    def latest(
        self, device_ids: Sequence[str] | None = None, until: datetime | None = None
    ) -> dict[SeriesKey, tuple[datetime, float]]:
        """The newest retained sample of every series (of `device_ids` only, when given), at
        or before `until` when given: {(device_id, metric): (at, value)}."""
        params = {
            "every": device_ids is None,
            "devices": list(device_ids or []),
            "until": _NO_END_MS if until is None else to_epoch_ms(until),
        }
        newest: dict[SeriesKey, tuple[int, float]] = {}
        with self._engine.connect() as connection:
            for device_id, metric, at_ms, value in connection.execute(_LATEST, params):
                known = newest.get((device_id, metric))
                if known is None or at_ms > known[0]:
                    newest[device_id, metric] = (at_ms, value)
        return {key: (from_epoch_ms(ms), value) for key, (ms, value) in newest.items()}

    def _rows(self, samples: Sequence[Sample]) -> list[Row]:
        try:
            return _to_rows(samples, self._series)
        except KeyError:
            return _to_rows(samples, self._register({(s.device_id, s.metric) for s in samples}))

    def _register(self, keys: set[SeriesKey]) -> dict[SeriesKey, int]:
        """Number the series not yet known, then reload the whole dictionary; the dictionary
        loaded, which holds `keys`. One registration at a time: two writers on two threads
        each reloading could otherwise leave the older load in place, without the other's
        new series (a KeyError in its write)."""
        for device_id, metric in keys:
            if not 0 < len(device_id) <= MAX_NAME or not 0 < len(metric) <= MAX_NAME:
                raise ValueError(f"series ({device_id!r}, {metric!r}): names are 1-64 chars")
        series = TelemetrySeriesRow
        with self._registering:
            missing = [{"device_id": d, "metric": m} for d, m in keys - self._series.keys()]
            with self._engine.begin() as connection:
                if missing:
                    connection.execute(_SERIES_INSERT, missing)
                found = connection.execute(select(series.id, series.device_id, series.metric))
                loaded = {(device_id, metric): id_ for id_, device_id, metric in found}
            self._series = loaded
        return loaded

    def _lock(self, connection: Connection) -> None:
        """Take the lock every merge, rollup and retention run holds (module docstring)."""
        if self._sqlite:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("LOCK TABLE telemetry_inbox IN EXCLUSIVE MODE")


def _to_rows(samples: Sequence[Sample], series_ids: dict[SeriesKey, int]) -> list[Row]:
    """(series_id, at_ms, value) per sample; KeyError for a series without a number yet."""
    rows: list[Row] = []
    append = rows.append
    last_at: datetime | None = None
    last_ms = 0
    for device_id, metric, at, value in samples:
        if at is not last_at:  # one reading's samples share their `at`: convert it once
            last_at, last_ms = at, to_epoch_ms(at)
        append((series_ids[device_id, metric], last_ms, value))
    return rows


def _append_sqlite(connection: Connection, rows: list[Row]) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction could fail to
    # upgrade its read snapshot if a merge committed in between.
    driver = connection.connection.dbapi_connection
    assert driver is not None
    with closing(driver.cursor()) as cursor:
        cursor.execute("BEGIN IMMEDIATE")
        cursor.executemany(_INBOX_INSERT, rows)


def _append_postgres(connection: Connection, rows: list[Row]) -> None:
    driver = cast("psycopg.Connection[Any]", connection.connection.dbapi_connection)
    with driver.cursor() as cursor, cursor.copy(_INBOX_COPY) as copy:
        copy.set_types(["int4", "int8", "float8"])
        for row in rows:
            copy.write_row(row)


def _merge(connection: Connection) -> int:
    """The merge statements, under the caller's lock; returns the samples added."""
    *before, move, empty = _MERGE
    for statement in before:
        connection.execute(statement)
    added = connection.execute(move).rowcount
    connection.execute(empty)
    return added


def _roll(connection: Connection, resolution: Resolution, until_ms: int) -> int:
    """Recompute the pending `resolution` buckets closed by `until_ms`; clear them."""
    params = {"resolution": resolution.value, "closed": until_ms - resolution.width_ms}
    written = connection.execute(_ROLLUP[resolution], params).rowcount
    if resolution is Resolution.MINUTE:
        connection.execute(_MARK_HOURS, params)
    connection.execute(_DONE, params)
    return written


def _before_pending(
    connection: Connection, cutoffs: dict[Resolution, int], pending: Resolution
) -> int:
    """The cutoff of the level below `pending`, kept at or before the hour that holds its
    oldest pending bucket (those rows are still needed to compute it)."""
    finer = Resolution.RAW if pending is Resolution.MINUTE else Resolution.MINUTE
    oldest = connection.execute(_OLDEST_PENDING, {"resolution": pending.value}).scalar()
    if oldest is None:
        return cutoffs[finer]
    return min(cutoffs[finer], floor_ms(int(oldest), HOUR_MS))


def _delete_before(connection: Connection, resolution: Resolution, before_ms: int) -> int:
    """Delete `resolution`'s rows before `before_ms` and move its horizon there."""
    params = {"resolution": resolution.value, "before": before_ms}
    connection.execute(_ADVANCE_HORIZON, params)
    if resolution is Resolution.RAW:
        return connection.execute(_DELETE_SAMPLES, params).rowcount
    return connection.execute(_DELETE_ROLLUPS, params).rowcount


def _point(bucket_ms: int, count: int, total: float, low: float, high: float) -> Point:
    return Point(from_epoch_ms(int(bucket_ms)), total / count, low, high, int(count))
