"""Telemetry ingest: sustained samples/s of `TelemetryStore.write` into a fresh SQLite file.

Builds the samples first, the way the pipeline does (ASIC readings through `asic_samples`: seven
metrics per miner, so 150 miners make 1,050 series; a miner's samples share its poll time), then
times every `write` of `--batch` samples plus the closing merge, each write its own committed
transaction, on the engine `hcp up` uses (WAL, synchronous=NORMAL, the background checkpointer).
The baseline is plain sqlite3 `executemany` of ready-made tuples into an unindexed table with the
same pragmas and transactions: the most a Python writer gets from SQLite on this machine.
Prints one JSON object; with PostgreSQL reachable, also its figure (fewer samples, own schema).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from hcp.adapters.db.engine import SqliteCheckpointer, make_engine
from hcp.adapters.db.migrate import upgrade
from hcp.adapters.db.tables import TelemetrySampleRow
from hcp.adapters.db.telemetry import TelemetryStore
from hcp.domain.telemetry import AsicReading, MinerState, Sample, asic_samples, to_epoch_ms

T0 = datetime(2025, 1, 1, tzinfo=UTC)
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def make_samples(total: int, miners: int) -> list[Sample]:
    """`total` samples from polls of `miners` miners once a second (each offset by a few ms)."""
    samples: list[Sample] = []
    tick = 0
    while len(samples) < total:
        for m in range(miners):
            at = T0 + timedelta(seconds=tick, milliseconds=m)
            samples.extend(asic_samples(_reading(m, at, tick), f"site-asic-{m:05d}"))
        tick += 1
    return samples[:total]


def _reading(miner: int, at: datetime, tick: int) -> AsicReading:
    wobble = (tick * 7 + miner * 13) % 100 / 100
    return AsicReading(
        device=f"10.0.{miner // 250}.{miner % 250}:4028",
        at=at,
        state=MinerState.MINING,
        hashrate_ths=200 + wobble,
        power_w=3500 + 10 * wobble,
        temperature_c=70 + wobble,
        profile="stock",
        accepted_shares=tick * 3,
        rejected_shares=tick // 100,
    )


def batches(samples: list[Sample], size: int) -> list[list[Sample]]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def bench_store(engine: Engine, parts: list[list[Sample]]) -> dict[str, float]:
    """Seconds spent in the writes and in the closing merge, on a freshly migrated database."""
    upgrade(engine)
    store = TelemetryStore(engine)
    store.write(parts[0][:1])  # number the series outside the timing: it happens once, ever
    started = time.perf_counter()
    for part in parts:
        store.write(part)
    written = time.perf_counter()
    store.merge()
    merged = time.perf_counter()
    return {"write_s": written - started, "merge_s": merged - written}


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(TelemetrySampleRow)) or 0)


def bench_sqlite(folder: Path, parts: list[list[Sample]]) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{folder / 'telemetry.db'}")
    checkpointer = SqliteCheckpointer(engine)
    checkpointer.start()
    try:
        result = bench_store(engine, parts)
        result["stored"] = stored_rows(engine)
    finally:
        checkpointer.stop()
        engine.dispose()
    return result


def bench_baseline(folder: Path, parts: list[list[Sample]]) -> float:
    """Seconds to insert the same rows as ready tuples into an unindexed table."""
    ready = [[(i % 1_050 + 1, to_epoch_ms(s.at), s.value) for i, s in enumerate(p)] for p in parts]
    connection = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=20000"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute("CREATE TABLE samples (series_id INTEGER, at_ms INTEGER, value REAL)")
    started = time.perf_counter()
    for rows in ready:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO samples VALUES (?, ?, ?)", rows)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def bench_postgres(url: str, parts: list[list[Sample]]) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # unreachable server: report why, keep the SQLite figures
        admin.dispose()
        return {"postgres_error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    engine = make_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        timing = bench_store(engine, parts)
        total = sum(len(p) for p in parts)
        seconds = timing["write_s"] + timing["merge_s"]
        return {"postgres_samples": total, "postgres_samples_per_s": round(total / seconds)}
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--miners", type=int, default=150, help="7 series per miner")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--postgres-samples", type=int, default=500_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    samples = make_samples(args.samples, args.miners)
    parts = batches(samples, args.batch)
    with tempfile.TemporaryDirectory(prefix="hcp-bench-ingest-") as tmp:
        sqlite_result = bench_sqlite(Path(tmp), parts)
        baseline_s = bench_baseline(Path(tmp), parts)
    seconds = sqlite_result["write_s"] + sqlite_result["merge_s"]
    ingest = len(samples) / seconds
    baseline = len(samples) / baseline_s
    report: dict[str, Any] = {
        "samples": len(samples),
        "series": args.miners * 7,
        "batch": args.batch,
        "ingest_samples_per_s": round(ingest),
        "write_s": round(sqlite_result["write_s"], 3),
        "merge_s": round(sqlite_result["merge_s"], 3),
        "stored_samples": int(sqlite_result["stored"]),
        "baseline_samples_per_s": round(baseline),
        "ratio": round(ingest / baseline, 3),
        "target_samples_per_s": 200_000,
        "sqlite_version": sqlite3.sqlite_version,
    }
    if not args.no_postgres:
        pg_parts = batches(samples[: args.postgres_samples], args.batch)
        report.update(bench_postgres(args.postgres_url, pg_parts))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
