"""Engines and sessions for SQLite (default, one file) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
BACKSTOP_CHECKPOINT_PAGES = 20_000


T = TypeVar("T")

IN_LIST_LIMIT = 500
"""Values per SQL `IN` list: well within every driver's bound-parameter limit (SQLite's is
32,766 per statement) even when a statement binds its list twice."""


def conflict_insert(dialect: str, table: Any) -> Any:
    """An INSERT into `table` in `dialect`'s own form, which takes ON CONFLICT clauses
    (`on_conflict_do_nothing`, `on_conflict_do_update`): SQLite's or PostgreSQL's."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no ON CONFLICT insert for {dialect} databases (SQLite, PostgreSQL)")


def chunked(items: Sequence[T], size: int = IN_LIST_LIMIT) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`, for reads by many keys in `IN` lists."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain PostgreSQL URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with HCP's per-backend settings: WAL and durable commits on SQLite."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=NORMAL in WAL mode keeps every
    # committed transaction across a process crash or kill (only an OS crash may lose the
    # last commits), which is the durability HCP promises for an acknowledged request.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints move the WAL into the database file and fsync it; left to the committing
    # connection they stall a commit now and then. SqliteCheckpointer runs them beside the
    # writers; this high mark is only the backstop should it stop.
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
    cursor.close()


class SqliteCheckpointer:
    """Runs a passive WAL checkpoint every `interval_s` on its own thread and connection.

    A passive checkpoint never waits for writers, so commits do not stall behind its fsync.
    Does nothing for other databases.
    """

    def __init__(self, engine: Engine, interval_s: float = 1.0) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._engine.dialect.name != "sqlite" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                with self._engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # a missed checkpoint only lets the WAL grow until the next one
                log.warning("WAL checkpoint failed", exc_info=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
