"""The dispatcher's memory of its miners in the store: kept as it changes, taken up by the next
process to lead the site."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text

from hcp.adapters.db.dispatch_log import SqlCommandLog
from hcp.adapters.db.dispatch_memory import SqlDispatchMemory
from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.migrate import upgrade
from hcp.dispatch import Action, Command, CommandOutcome, MinerMemory, OutcomeStatus, Trouble
from hcp.domain.telemetry import AsicReading, MinerState

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def command(n: int, action: Action = Action.SLEEP, **fields: object) -> Command:
    at = T0 + timedelta(seconds=n)
    values: dict[str, object] = {
        "id": f"m{n:03d}:{action.value}:1@{at.isoformat()}",
        "device_id": f"m{n:03d}",
        "address": f"127.0.0.{n}:4028",
        "action": action,
        "profile": None if action is Action.SLEEP else "stock",
        "reason": "sleep: S21 over target (3 running wanted); plan 2025-01-01T12:00Z: price",
        "issued_at": at,
        "attempt": 1,
        "confirm_by": at + timedelta(seconds=60),
        "expected_power_w": 25.0,
    }
    values.update(fields)
    return Command(**values)  # type: ignore[arg-type]


def full_memory() -> MinerMemory:
    """A miner with something in every field: a wake in flight (attempt 2 after a failed one),
    a confirmed sleep, a degradation, a spell, times in another zone than UTC."""
    reading = AsicReading(
        "127.0.0.7:4028",
        T0 - timedelta(hours=1),
        MinerState.MINING,
        201.5,
        3_498.25,
        71.0,
        "stock",
        12,
        1,
        (),
    )
    wake = command(
        7,
        Action.WAKE,
        attempt=2,
        expected_power_w=3_500.0,
        power_increase_w=3_475.0,
        from_profile="eco",
        reason="wake at stock: S21 under target (4 running wanted) (attempt 2); plan …",
    )
    return MinerMemory(
        device_id="m007",
        pending=wake,
        confirmed=command(7, issued_at=T0 - timedelta(hours=2), power_decrease_w=3_475.0),
        failed=replace(wake, id="m007:wake:1@earlier", attempt=1),
        degraded_until=T0 + timedelta(minutes=30),
        last_mining=reading,
        trouble=Trouble("overheating: 97 °C >= 90 °C; board 2 dead", T0 - timedelta(minutes=3), 3),
        troubled=True,
        slept_at=(T0 - timedelta(hours=2)).astimezone(timezone(timedelta(hours=-5))),
        woken_at=T0,
    )


def test_memories_come_back_as_they_were_stored_and_a_save_replaces_them(engine: Engine) -> None:
    store = SqlDispatchMemory(engine, "site-1")
    blank = MinerMemory("m001")
    full = full_memory()
    store.save([blank, full])
    loaded = {m.device_id: m for m in store.load()}
    assert loaded == {"m001": blank, "m007": full}
    back = loaded["m007"]
    assert back.pending is not None and back.pending.issued_at.tzinfo is not None
    assert back.slept_at is not None and back.slept_at.utcoffset() == timedelta(0)
    assert back.trouble is not None and back.trouble.last_seen.tzinfo is not None

    settled = replace(full, pending=None, confirmed=full.pending, failed=None, troubled=False)
    store.save([settled])
    assert {m.device_id: m for m in store.load()} == {"m001": blank, "m007": settled}
    assert SqlDispatchMemory(engine, "site-2").load() == []  # each site its own
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM dispatch_memory")).scalar() == 2


def test_a_naive_time_is_refused(engine: Engine) -> None:
    naive = replace(full_memory(), pending=command(1, issued_at=datetime(2025, 1, 1)))
    with pytest.raises(ValueError, match="naive datetime"):
        SqlDispatchMemory(engine, "site-1").save([naive])


def test_commands_left_sent_that_nothing_knows_in_flight_are_failed(engine: Engine) -> None:
    log = SqlCommandLog(engine, "site-1")
    known, unknown, settled = command(1), command(2, Action.WAKE), command(3)
    for c in (known, unknown, settled):
        log.record(c)
    log.record_outcome(CommandOutcome(settled, OutcomeStatus.CONFIRMED, T0, "sleeping, 25 W"))
    log.flush()
    other_site = SqlCommandLog(engine, "site-2")
    other_site.record(command(4))
    other_site.flush()

    later = T0 + timedelta(hours=1)
    assert log.fail_unknown({known.id}, later, "restarted") == 1
    statuses = {r.id: (r.status, r.outcome_at, r.detail) for r in log.recent()}
    assert statuses[known.id] == ("sent", None, None)
    assert statuses[unknown.id] == ("failed", later, "restarted")
    assert statuses[settled.id] == ("confirmed", T0, "sleeping, 25 W")
    assert [r.status for r in log.recent(device_id="m004")] == ["sent"]  # another site's
