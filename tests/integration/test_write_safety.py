"""Nothing half-written: a migration that fails midway, a first start cut between its two demo
logins, a command log write that fails, two requests racing to create the same customer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.operations import Operations
from alembic.util.exc import CommandError
from sqlalchemy import Engine, event, inspect

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.adapters.db.dispatch_log import KEEP_FAILED_FLUSHES, SqlCommandLog
from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.migrate import current_revision, known_revisions, upgrade
from hcp.dispatch.model import Action, Command, CommandOutcome, OutcomeStatus
from hcp.domain.errors import ValidationError
from hcp.domain.identity import Principal, Role
from tests.api.conftest import START, make_settings

ADMIN = Principal("a", Role.ADMIN, None)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_an_upgrade_that_fails_midway_leaves_the_schema_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the driver committed each DDL statement alone: 0012's new table stayed behind,
    and every later upgrade failed on `table price_changes already exists`."""
    upgrade(engine, "0011")
    real = Operations.execute

    def failing(self: Operations, sql: Any, *args: Any, **kwargs: Any) -> Any:
        if "INSERT INTO price_changes" in str(sql):
            raise RuntimeError("the process dies here")
        return real(self, sql, *args, **kwargs)

    monkeypatch.setattr(Operations, "execute", failing)
    with pytest.raises(RuntimeError, match="the process dies here"):
        upgrade(engine)
    assert current_revision(engine) == "0011"
    assert "price_changes" not in inspect(engine).get_table_names()

    monkeypatch.setattr(Operations, "execute", real)
    upgrade(engine)
    assert current_revision(engine) == known_revisions(engine)[-1]


_ORPHAN = (
    "INSERT INTO workload_events (workload_id, at, event, to_state) "
    "VALUES ('gone', '2025-01-01 00:00:00', 'submit', 'queued')"
)


def test_a_migration_that_would_leave_dangling_rows_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hcp.db'}")
    upgrade(engine, "0011")
    real = Operations.execute

    def orphaning(self: Operations, sql: Any, *args: Any, **kwargs: Any) -> Any:
        if "INSERT INTO price_changes" in str(sql):
            real(self, _ORPHAN)  # a migration with a bug: a history row for no workload
        return real(self, sql, *args, **kwargs)

    monkeypatch.setattr(Operations, "execute", orphaning)
    with pytest.raises(CommandError, match=r"1 row.* referring to missing ones"):
        upgrade(engine)
    assert current_revision(engine) == "0011"
    assert "price_changes" not in inspect(engine).get_table_names()
    engine.dispose()


def test_rows_dangling_before_a_migration_do_not_stop_it(tmp_path: Path) -> None:
    path = tmp_path / "hcp.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, "0011")
    raw = sqlite3.connect(path)  # foreign keys are off in a plain connection
    raw.execute(_ORPHAN)
    raw.commit()
    raw.close()
    upgrade(engine)
    assert current_revision(engine) == known_revisions(engine)[-1]
    engine.dispose()


def test_the_demo_logins_are_stored_together_or_not_at_all(tmp_path: Path) -> None:
    """A first start killed between the two demo users left the customer's login in the keys
    file but not in the store, and the next start (a user exists) never made it."""
    runtime = bootstrap.build(
        make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path), ManualClock(START)
    )
    bootstrap.prepare(runtime)
    identity = runtime.platform.identity
    with runtime.unit_of_work() as uow:
        assert len(uow.users.all()) == 2
    fresh = identity.new_user(
        ADMIN, email="new@example.com", name="New", role=Role.ADMIN, password="x" * 16
    )
    again = identity.new_user(
        ADMIN, email="admin@hcp.local", name="Twice", role=Role.ADMIN, password="x" * 16
    )
    with pytest.raises(ValidationError, match=r"admin@hcp\.local"):
        identity.store_users([fresh, again])
    with runtime.unit_of_work() as uow:
        assert uow.users.by_email("new@example.com") is None
    runtime.close()


def _command(n: int) -> Command:
    return Command(
        f"cmd-{n}", "asic-0001", "127.0.0.1:4028", Action.SLEEP, None, "plan", T0, 1, T0, 0.0
    )


def _fail_writes(engine: Engine) -> list[int]:
    """Make every INSERT into the command log fail until the returned list holds a 0."""
    switch = [1]

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if switch[0] and statement.startswith("INSERT INTO dispatch_commands"):
            raise sqlite3.OperationalError("database is locked")

    event.listen(engine, "before_cursor_execute", refuse)
    return switch


def test_a_command_log_write_that_fails_keeps_its_commands_for_the_next(tmp_path: Path) -> None:
    """Before, the flush took the commands out of the buffer and lost them: sent to the miner,
    never in `GET /api/v1/dispatch`."""
    engine = make_engine(f"sqlite:///{tmp_path / 'hcp.db'}")
    upgrade(engine)
    log = SqlCommandLog(engine, None)
    switch = _fail_writes(engine)
    log.record(_command(1))
    with pytest.raises(Exception, match="database is locked"):
        log.flush()
    log.record_outcome(CommandOutcome(_command(1), OutcomeStatus.CONFIRMED, T0, "asleep"))
    log.record(_command(2))
    switch[0] = 0
    assert log.flush() == 3
    stored = {c.id: c.status for c in log.recent()}
    assert stored == {"cmd-1": "confirmed", "cmd-2": "sent"}
    engine.dispose()


def test_commands_the_store_keeps_refusing_are_dropped_in_the_end(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hcp.db'}")
    upgrade(engine)
    log = SqlCommandLog(engine, None)
    switch = _fail_writes(engine)
    log.record(_command(1))
    for _ in range(KEEP_FAILED_FLUSHES):
        with pytest.raises(Exception, match="database is locked"):
            log.flush()
    switch[0] = 0
    log.record(_command(2))
    assert log.flush() == 1
    assert [c.id for c in log.recent()] == ["cmd-2"]
    engine.dispose()


def test_a_customer_created_by_a_racing_request_is_a_clear_error(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests found no such customer; the second insert hit the key (before: a 500)."""
    runtime = bootstrap.build(make_settings(database_url, tmp_path), ManualClock(START))
    bootstrap.prepare(runtime)
    identity = runtime.platform.identity
    identity.create_customer(ADMIN, "acme", "Acme")
    from hcp.adapters.db import repositories

    monkeypatch.setattr(repositories.SqlCustomers, "get", lambda self, customer_id: None)
    with pytest.raises(ValidationError, match="customer 'acme' exists"):
        identity.create_customer(ADMIN, "acme", "Acme again")
    runtime.close()


def test_the_api_answers_a_racing_duplicate_customer_with_422(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from hcp.adapters.db import repositories
    from hcp.http.app import create_app

    runtime = bootstrap.build(make_settings(database_url, tmp_path), ManualClock(START))
    keys = bootstrap.prepare(runtime)
    assert keys is not None
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    with TestClient(create_app(runtime.platform)) as client:
        body = {"customer_id": "acme", "name": "Acme"}
        assert client.post("/api/v1/customers", json=body, headers=admin).status_code == 201
        monkeypatch.setattr(repositories.SqlCustomers, "get", lambda self, customer_id: None)
        raced = client.post("/api/v1/customers", json=body, headers=admin)
    assert raced.status_code == 422
    assert "exists" in raced.text
    runtime.close()
