"""The telemetry store on SQLite and PostgreSQL: round trips, rollups, late data, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.tables import (
    Base,
    TelemetryInboxRow,
    TelemetryRollupRow,
    TelemetrySampleRow,
    TelemetrySeriesRow,
)
from hcp.adapters.db.telemetry import TelemetryStore
from hcp.domain.telemetry import Point, Resolution, RetentionPolicy, Sample, to_epoch_ms

T0 = datetime(2025, 1, 1, tzinfo=UTC)
POWER = ("miner-1", "power_w")
SHORT = RetentionPolicy(raw=timedelta(hours=1), minute=timedelta(hours=2), hour=timedelta(hours=3))

# A stored rollup: (minutes after T0, count, sum, min, max, last)
Rollup = tuple[float, int, float, float, float, float]
Summary = tuple[datetime, float, float, float, int]  # a point as (start, sum, min, max, count)


@pytest.fixture
def store(engine: Engine) -> TelemetryStore:
    return TelemetryStore(engine)


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def power(*points: tuple[datetime, float]) -> list[Sample]:
    return [Sample(*POWER, when, value) for when, value in points]


def every_10_minutes(until_minute: int) -> list[Sample]:
    return power(*((at(m), float(m)) for m in range(0, until_minute + 1, 10)))


def query(store: TelemetryStore, step: timedelta, end: datetime = at(600)) -> list[Point]:
    return store.query(*POWER, T0, end, step)


def rollups(engine: Engine, resolution: str, device: str = "miner-1") -> list[Rollup]:
    """The stored rollup rows of `device`'s power, oldest first."""
    r, s = TelemetryRollupRow, TelemetrySeriesRow
    columns = (r.bucket_start_ms, r.sample_count, r.value_sum, r.value_min, r.value_max)
    statement = (
        select(*columns, r.value_last)
        .join(s, s.id == r.series_id)
        .where(r.resolution == resolution, s.device_id == device, s.metric == "power_w")
        .order_by(r.bucket_start_ms)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return [
        ((b - to_epoch_ms(T0)) / 60_000, n, total, lo, hi, last)
        for b, n, total, lo, hi, last in rows
    ]


def count(engine: Engine, table: type[Base]) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)


def test_samples_read_back_bucketed_from_the_inbox_and_after_the_merge(
    store: TelemetryStore, engine: Engine
) -> None:
    store.write(power(*((at(seconds=10 * i), float(i)) for i in range(12))))
    by_30s = [Point(at(seconds=30 * k), 3 * k + 1.0, 3.0 * k, 3 * k + 2.0, 3) for k in range(4)]
    assert count(engine, TelemetryInboxRow) == 12
    assert query(store, timedelta(seconds=30)) == by_30s
    assert store.merge() == 12
    assert count(engine, TelemetryInboxRow) == 0
    assert query(store, timedelta(seconds=30)) == by_30s
    # `from` is rounded down to a step boundary; `to` is exclusive.
    assert store.query(*POWER, at(seconds=45), at(seconds=90), timedelta(seconds=30)) == by_30s[1:3]


def test_a_repeated_sample_is_kept_once(store: TelemetryStore, engine: Engine) -> None:
    batch = power((at(seconds=1), 5.0), (at(seconds=2), 7.0))
    once = [Point(at(), 6.0, 5.0, 7.0, 2)]
    store.write(batch)
    store.write(batch)
    assert query(store, timedelta(seconds=10)) == once
    store.merge()
    store.write(batch)
    assert query(store, timedelta(seconds=10)) == once
    store.merge()
    assert count(engine, TelemetrySampleRow) == 2


def test_rollups_equal_hand_computed_minutes_and_hours(
    store: TelemetryStore, engine: Engine
) -> None:
    store.write(power((at(0, 10), 1.0), (at(0, 50), 3.0), (at(1, 0), 10.0), (at(1, 59.999), 2.0)))
    store.write([*power((at(61), 100.0)), Sample("miner-2", "power_w", at(0, 30), 42.0)])
    assert store.rollup(at(120)) == 7  # minutes 0, 1, 61 and 0 of miner-2; three hours
    assert rollups(engine, "1m") == [
        (0, 2, 4.0, 1.0, 3.0, 3.0),
        (1, 2, 12.0, 2.0, 10.0, 2.0),
        (61, 1, 100.0, 100.0, 100.0, 100.0),
    ]
    assert rollups(engine, "1h") == [
        (0, 4, 16.0, 1.0, 10.0, 2.0),
        (60, 1, 100.0, 100.0, 100.0, 100.0),
    ]
    assert rollups(engine, "1m", "miner-2") == [(0, 1, 42.0, 42.0, 42.0, 42.0)]
    hourly = [Point(at(0), 4.0, 1.0, 10.0, 4), Point(at(60), 100.0, 100.0, 100.0, 1)]
    assert query(store, timedelta(hours=1)) == hourly
    assert query(store, timedelta(minutes=2)) == hourly  # two-minute buckets of minute rows


def test_rollup_is_idempotent(store: TelemetryStore, engine: Engine) -> None:
    store.write(every_10_minutes(170))
    assert store.rollup(at(200)) == 18 + 3
    before = (rollups(engine, "1m"), rollups(engine, "1h"))
    assert store.rollup(at(200)) == 0
    assert store.rollup(at(400)) == 0
    assert (rollups(engine, "1m"), rollups(engine, "1h")) == before


def test_open_buckets_wait_until_they_close(store: TelemetryStore, engine: Engine) -> None:
    store.write(power((at(0, 10), 1.0), (at(1, 10), 2.0)))
    assert store.rollup(at(1, 30)) == 1
    assert [r[0] for r in rollups(engine, "1m")] == [0]
    assert rollups(engine, "1h") == []
    assert store.rollup(at(2)) == 1
    assert store.rollup(at(60)) == 1
    assert rollups(engine, "1h") == [(0, 2, 3.0, 1.0, 2.0, 2.0)]


def test_a_late_sample_recomputes_its_minute_and_hour(
    store: TelemetryStore, engine: Engine
) -> None:
    store.write(power((at(0, 10), 1.0), (at(0, 50), 3.0), (at(30), 5.0)))
    store.rollup(at(120))
    store.write(power((at(0, 20), 100.0), (at(0, 10), 1.0)))  # one late, one repeated
    assert store.rollup(at(120)) == 2
    assert rollups(engine, "1m")[0] == (0, 3, 104.0, 1.0, 100.0, 3.0)
    assert rollups(engine, "1h") == [(0, 4, 109.0, 1.0, 100.0, 5.0)]


def test_retention_deletes_whole_hours_past_each_cutoff(
    store: TelemetryStore, engine: Engine
) -> None:
    store.write(every_10_minutes(300))
    store.rollup(at(301))
    # now 5:30 -> raw kept from 4:00, minutes from 3:00, hours from 2:00
    deleted = store.apply_retention(at(330), SHORT)
    assert deleted == {Resolution.RAW: 24, Resolution.MINUTE: 18, Resolution.HOUR: 2}
    assert query(store, timedelta(seconds=10))[0].at == at(240)
    assert rollups(engine, "1m")[0][0] == 180
    assert [r[0] for r in rollups(engine, "1h")] == [120, 180, 240]
    assert store.apply_retention(at(330), SHORT) == dict.fromkeys(Resolution, 0)


def test_retention_keeps_what_is_not_rolled_up_yet(store: TelemetryStore, engine: Engine) -> None:
    store.write(every_10_minutes(120))
    assert store.apply_retention(at(330), SHORT)[Resolution.RAW] == 0
    store.rollup(at(330))
    assert [r[1] for r in rollups(engine, "1h")] == [6, 6, 1]
    assert store.apply_retention(at(330), SHORT)[Resolution.RAW] == 13


def test_a_sample_older_than_the_raw_horizon_is_dropped(
    store: TelemetryStore, engine: Engine
) -> None:
    long_rollups = RetentionPolicy(raw=timedelta(hours=1))
    store.write(every_10_minutes(300))
    store.rollup(at(301))
    store.apply_retention(at(330), long_rollups)
    store.write(power((at(60, 30), 1000.0)))
    assert store.rollup(at(331)) == 0
    assert rollups(engine, "1m")[6] == (60, 1, 60.0, 60.0, 60.0, 60.0)
    assert count(engine, TelemetrySampleRow) == 7


def test_the_step_picks_raw_minute_or_hour_data(store: TelemetryStore) -> None:
    store.write(power(*((at(seconds=10 * i), float(i)) for i in range(720))))  # two hours
    store.rollup(at(90))  # minutes 0-89 and hour 0 are rolled up, the rest is raw only

    def samples_seen(step: timedelta) -> int:
        return sum(p.count for p in query(store, step))

    assert samples_seen(timedelta(seconds=30)) == 720
    assert samples_seen(timedelta(minutes=1)) == 540
    assert samples_seen(timedelta(hours=1)) == 360
    two_minutes = query(store, timedelta(seconds=90))  # rounded up to whole minutes
    assert len(two_minutes) == 45
    assert {p.count for p in two_minutes} == {12}


def test_latest_reads_the_inbox_and_the_samples(store: TelemetryStore) -> None:
    store.write(power((at(0, 10), 1.0), (at(0, 20), 2.0)))
    store.write([Sample("miner-2", "temp_c", at(0, 5), 60.0)])
    store.merge()
    store.write(power((at(0, 30), 3.0)))
    assert store.latest() == {
        POWER: (at(0, 30), 3.0),
        ("miner-2", "temp_c"): (at(0, 5), 60.0),
    }
    assert store.latest(["miner-2"]) == {("miner-2", "temp_c"): (at(0, 5), 60.0)}
    assert store.latest([]) == {}


def test_latest_until_leaves_out_what_is_stamped_after_it(store: TelemetryStore) -> None:
    store.write(power((at(0, 10), 1.0), (at(0, 20), 2.0)))
    store.merge()
    store.write(power((at(0, 15), 1.5), (at(0, 30), 3.0)))
    assert store.latest(until=at(0, 30)) == {POWER: (at(0, 30), 3.0)}
    assert store.latest(until=at(0, 29)) == {POWER: (at(0, 20), 2.0)}  # merged
    assert store.latest(until=at(0, 19)) == {POWER: (at(0, 15), 1.5)}  # in the inbox
    assert store.latest(until=at(0, 9)) == {}


def test_raw_averages_read_many_devices_at_once_as_query_does_one(store: TelemetryStore) -> None:
    def gpu(device: str, *points: tuple[datetime, float]) -> list[Sample]:
        return [Sample(device, "power_w", when, value) for when, value in points]

    store.write(gpu("gpu-1", (at(0, 1), 100.0), (at(0, 1.5), 300.0), (at(0, 6), 400.0)))
    store.write([*gpu("gpu-2", (at(0, 2), 50.0)), Sample("gpu-2", "temp_c", at(0, 2), 70.0)])
    store.merge()
    store.write(gpu("gpu-1", (at(0, 6), 400.0), (at(0, 11), 500.0)))  # a repeat, then new
    store.write(gpu("gpu-3", (at(0, 30), 9.0)))  # outside the window
    found = store.raw_averages(["gpu-1", "gpu-2", "gpu-3", "gpu-9"], "power_w", at(), at(0, 20))
    assert found == {
        "gpu-1": [(at(0, 1), 200.0), (at(0, 6), 400.0), (at(0, 11), 500.0)],
        "gpu-2": [(at(0, 2), 50.0)],
    }
    one_by_one = store.query("gpu-1", "power_w", at(), at(0, 20), timedelta(seconds=1))
    assert [(p.at, p.avg) for p in one_by_one] == found["gpu-1"]
    assert store.raw_averages([], "power_w", at(), at(0, 20)) == {}
    assert store.raw_averages(["gpu-9"], "power_w", at(), at(0, 20)) == {}


def test_a_store_merges_after_enough_samples(engine: Engine) -> None:
    store = TelemetryStore(engine, merge_every=3)
    store.write(power((at(0, 1), 1.0), (at(0, 2), 2.0)))
    assert count(engine, TelemetryInboxRow) == 2
    store.write(power((at(0, 3), 3.0), (at(0, 4), 4.0)))
    assert count(engine, TelemetryInboxRow) == 0
    assert count(engine, TelemetrySampleRow) == 4


def test_stores_sharing_a_database_share_series_numbers(engine: Engine) -> None:
    first, second = TelemetryStore(engine), TelemetryStore(engine)
    first.write(power((at(0, 1), 1.0)))
    second.write([Sample("miner-2", "power_w", at(0, 1), 5.0), *power((at(0, 2), 3.0))])
    first.write([Sample("miner-2", "power_w", at(0, 2), 7.0)])
    assert query(first, timedelta(seconds=10)) == [Point(at(), 2.0, 1.0, 3.0, 2)]
    assert second.query("miner-2", "power_w", T0, at(1), timedelta(seconds=10)) == [
        Point(at(), 6.0, 5.0, 7.0, 2)
    ]
    assert count(engine, TelemetrySeriesRow) == 2


def test_naive_times_and_long_names_are_refused(store: TelemetryStore) -> None:
    with pytest.raises(ValueError, match="timezone"):
        store.write([Sample(*POWER, datetime(2025, 1, 1), 1.0)])
    with pytest.raises(ValueError, match="1-64"):
        store.write([Sample("m" * 65, "power_w", T0, 1.0)])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3 * 3_600_000 - 1), st.integers(-1000, 1000)),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(0, 4 * 3_600_000), max_size=4),
)
def test_rollups_always_agree_with_the_raw_samples(
    points: list[tuple[int, int]], rollup_at_ms: list[int]
) -> None:
    """However the samples arrive (in batches between rollups, late, repeated), once every
    bucket has closed the minute and hour rollups aggregate exactly the raw samples."""
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    store = TelemetryStore(engine, merge_every=7)
    batches = [points[i : i + 9] for i in range(0, len(points), 9)]
    for n, batch in enumerate(batches):
        store.write(power(*((at(seconds=ms / 1000), float(v)) for ms, v in batch)))
        if n < len(rollup_at_ms):
            store.rollup(at(seconds=rollup_at_ms[n] / 1000))
    store.rollup(at(240))
    raw = query(store, timedelta(seconds=30))
    for step in (timedelta(minutes=1), timedelta(minutes=30), timedelta(hours=1)):
        assert _rebucket(raw, step) == _summaries(query(store, step))
    engine.dispose()


def _rebucket(points: list[Point], step: timedelta) -> list[Summary]:
    """Merge finer points into `step` buckets."""
    merged: dict[datetime, Summary] = {}
    width = step.total_seconds()
    for p in points:
        start = T0 + timedelta(seconds=(p.at - T0).total_seconds() // width * width)
        _, total, lo, hi, n = merged.get(start, (start, 0.0, p.min, p.max, 0))
        merged[start] = (
            start,
            total + p.avg * p.count,
            min(lo, p.min),
            max(hi, p.max),
            n + p.count,
        )
    return [_rounded(summary) for _, summary in sorted(merged.items())]


def _summaries(points: list[Point]) -> list[Summary]:
    return [_rounded((p.at, p.avg * p.count, p.min, p.max, p.count)) for p in points]


def _rounded(summary: Summary) -> Summary:
    start, total, lo, hi, n = summary
    return (start, round(total, 6), lo, hi, n)


def test_two_threads_writing_new_series_at_once_both_store_them(
    store: TelemetryStore, engine: Engine
) -> None:
    """Two recorders share one store (the leader's and a stopping one's, on the bus): each
    write that meets new series numbers them and reloads the series; neither reload may hide
    the other's new series from its write (a KeyError before the registrations took turns)."""
    rounds, per_write = 25, 20
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for r in range(rounds):
                samples = [
                    Sample(f"{name}-{r}-{i}", "power_w", at(minutes=r), float(i))
                    for i in range(per_write)
                ]
                barrier.wait(timeout=30)
                store.write(samples)
        except BaseException as error:  # handed to the test's thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert count(engine, TelemetrySeriesRow) == 2 * rounds * per_write
