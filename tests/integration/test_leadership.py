"""The leadership adapters on real stores: one holder per site, freed when the holder dies, and
a PostgreSQL leader whose session the server ends learns it at its next check."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.leadership import (
    FileLeadership,
    PostgresLeadership,
    leadership_for,
    lock_key,
)


def test_a_site_file_lock_has_one_holder_and_is_freed_on_release(tmp_path: Path) -> None:
    path = tmp_path / "hcp.db.site-1.controller.lock"
    a, b = FileLeadership(path, "site-1"), FileLeadership(path, "site-1")
    assert a.try_acquire() and a.held and a.still_held()
    assert not b.try_acquire() and not b.held
    another_site = FileLeadership(tmp_path / "other.lock", "site-2")
    assert another_site.try_acquire()
    another_site.close()
    a.release()
    assert not a.still_held()
    assert b.try_acquire()
    b.close()


def test_a_site_file_lock_is_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "site.lock"
    script = (
        "import time; from pathlib import Path;"
        "from hcp.adapters.db.leadership import FileLeadership;"
        f"held = FileLeadership(Path({str(path)!r}), 's'); assert held.try_acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            standby = FileLeadership(path, "s")
            assert not standby.try_acquire()
            holder.kill()
            holder.wait()
            assert standby.try_acquire()
            standby.close()
        finally:
            holder.kill()


def test_sqlite_stores_lock_beside_their_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hcp.db'}")
    try:
        found = leadership_for(engine, "site-1", tmp_path / "var")
        assert isinstance(found, FileLeadership)
        assert found.path == tmp_path / "hcp.db.site-1.controller.lock"
    finally:
        engine.dispose()


@pytest.fixture
def schemas(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two private schemas of the test database: URLs whose search_path is each."""
    names = [f"hcp_lead_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        a, b = (f"{postgres_url}?options=-csearch_path%3D{name}" for name in names)
        yield a, b
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engines(schemas: tuple[str, str]) -> Iterator[tuple[Engine, Engine]]:
    one, other = make_engine(schemas[0]), make_engine(schemas[1])
    yield one, other
    one.dispose()
    other.dispose()


@pytest.mark.postgres
def test_a_site_has_one_leader_per_schema_and_release_frees_it(
    engines: tuple[Engine, Engine],
) -> None:
    engine, other_schema = engines
    a = leadership_for(engine, "site-1", Path("unused"))
    b = PostgresLeadership(engine, "site-1")
    assert isinstance(a, PostgresLeadership)
    elsewhere = PostgresLeadership(other_schema, "site-1")
    site_2 = PostgresLeadership(engine, "site-2")
    try:
        assert a.try_acquire() and a.still_held()
        assert not b.try_acquire()
        assert site_2.try_acquire()  # another site: its own lock
        assert elsewhere.try_acquire()  # the same site id in another schema is another platform
        a.release()
        assert not a.held and not a.still_held()
        assert b.try_acquire() and b.still_held()
    finally:
        for leadership in (a, b, elsewhere, site_2):
            leadership.close()


@pytest.mark.postgres
def test_a_leader_whose_session_the_server_ends_sees_it_lost(
    engines: tuple[Engine, Engine],
) -> None:
    engine, _ = engines
    a, b = PostgresLeadership(engine, "site-1"), PostgresLeadership(engine, "site-1")
    try:
        assert a.try_acquire()
        with engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            key = lock_key(str(schema), "site-1")
            [pid] = connection.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = (:key >> 32)::oid AND objid = (:key & 4294967295)::oid"
                ),
                {"key": key},
            ).scalars()
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        while not b.try_acquire():
            assert time.monotonic() < deadline, "the lock outlived its session"
            time.sleep(0.05)
        assert not a.still_held() and not a.held  # the old leader learns it at its next check
        assert not a.try_acquire()  # and cannot take it back from the new one
    finally:
        a.close()
        b.close()


@pytest.mark.postgres
@pytest.mark.parametrize("key", [5, 2**31 - 1, 2**31, 2**62 + 12345])
def test_the_lock_is_seen_held_whatever_its_key(
    engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch, key: int
) -> None:
    """Keys below 2**31 travel as int4, whose shift by 32 is not 0: the check missed them."""
    import hcp.adapters.db.leadership as leadership

    monkeypatch.setattr(leadership, "lock_key", lambda scope, site_id: key)
    a = PostgresLeadership(engines[0], "site-1")
    try:
        assert a.try_acquire() and a.still_held()
    finally:
        a.close()
