"""Who controls a site: one control loop leads each site, any other stands by.

Two processes that both ran the control loop of one site would send its miners two sets of
commands, place one queue twice and bill the same GPU-hours twice. `leadership_for` gives a
`Leadership` for the store the platform runs on:

- PostgreSQL (several hosts): a session-level advisory lock (`pg_try_advisory_lock`) on a
  connection of its own, held for as long as the process leads. The server frees it when that
  session ends, so a leader that dies gives the site up with nobody's help. The session asks
  the server to probe the leader's socket every few seconds (TCP keepalives), so a leader host
  that vanishes from the network frees the site within about half a minute, not the kernel's
  default two hours. The lock's key is the site and the schema, so platforms in other schemas
  of one database do not contend.
- SQLite (one machine, one file): an exclusive `flock` on a file beside the database, which
  the kernel frees when the process dies.

A leader checks now and then that it still holds the site (`still_held`): a PostgreSQL
session can be cut by the server or the network, and a leader that has lost its lock must stop
commanding before another one starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from hcp.services.ports import Leadership

log = logging.getLogger(__name__)

KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
"""Server and client probe the lock session's socket after 10 s idle, every 5 s, 3 times."""
CHECK_TIMEOUT_MS = 5_000
"""A check that the lock is still held gives up after this long (and the leader steps down)."""


def leadership_for(engine: Engine, site_id: str, var_dir: Path) -> Leadership:
    """The `Leadership` of `site_id` for the store behind `engine` (see the module)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresLeadership(engine, site_id)
    database = url.database
    if database and database != ":memory:":
        return FileLeadership(Path(f"{database}.{site_id}.controller.lock"), site_id)
    return FileLeadership(var_dir / f"{site_id}.controller.lock", site_id)


def lock_key(scope: str, site_id: str) -> int:
    """A 63-bit advisory lock key (a non-negative bigint) for a site within a schema."""
    digest = hashlib.sha256(f"hcp-controller\0{scope}\0{site_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class PostgresLeadership:
    """A site's control as a PostgreSQL advisory lock (see the module)."""

    def __init__(self, engine: Engine, site_id: str) -> None:
        self.site_id = site_id
        # A connection of its own, never pooled: when it closes, the session ends and the lock
        # goes with it (a pooled one would carry the lock back into the pool).
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "keepalives": 1,
                "keepalives_idle": KEEPALIVE_IDLE_S,
                "keepalives_interval": KEEPALIVE_INTERVAL_S,
                "keepalives_count": KEEPALIVE_COUNT,
                "connect_timeout": 10,
            },
        )
        self._connection: Connection | None = None
        self._key: int | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return True
        connection = self._engine.connect()
        try:
            for setting, value in (
                ("tcp_keepalives_idle", KEEPALIVE_IDLE_S),
                ("tcp_keepalives_interval", KEEPALIVE_INTERVAL_S),
                ("tcp_keepalives_count", KEEPALIVE_COUNT),
                ("statement_timeout", CHECK_TIMEOUT_MS),
            ):
                connection.execute(text(f"SET {setting} = {int(value)}"))
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            key = lock_key(str(schema), self.site_id)
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(CAST(:key AS bigint))"), {"key": key}
            ).scalar_one()
        except BaseException:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection, self._key = connection, key
        return True

    def still_held(self) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            # A session-level lock lasts as long as its session: a session that answers
            # still holds it, and pg_locks says so outright.
            granted = connection.execute(
                text(
                    # A bigint key shows as its high and low 32 bits, objsubid 1. The cast:
                    # psycopg binds a key below 2**31 as int4, whose >> 32 is not 0.
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted "
                    "AND classid = (CAST(:key AS bigint) >> 32)::oid "
                    "AND objid = (CAST(:key AS bigint) & 4294967295)::oid AND objsubid = 1"
                ),
                {"key": self._key},
            ).scalar_one()
        except Exception as error:
            log.error("site %s: the lock session failed (%s)", self.site_id, error)
            self._drop()
            return False
        if not granted:
            self._drop()
        return bool(granted)

    def release(self) -> None:
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(Exception):  # closing the session frees the lock anyway
            connection.execute(
                text("SELECT pg_advisory_unlock(CAST(:key AS bigint))"), {"key": self._key}
            )
        self._drop()

    def close(self) -> None:
        self.release()
        self._engine.dispose()

    def _drop(self) -> None:
        connection, self._connection, self._key = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


class FileLeadership:
    """A site's control as an exclusive `flock` on `path` (one machine; see the module)."""

    def __init__(self, path: Path, site_id: str) -> None:
        self.path = path
        self.site_id = site_id
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except BaseException:
            handle.close()
            raise
        # Who holds it, for an operator who finds the file (the lock, not the text, decides).
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        # A flock lasts as long as the open file: nothing but this process can take it away.
        return self._file is not None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()  # frees the lock

    def close(self) -> None:
        self.release()
