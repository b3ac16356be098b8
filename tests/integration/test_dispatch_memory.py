"""The dispatcher's memory of its miners in the store: kept as it changes, taken up by the next
process to lead the site. A restarted controller, or a standby taking over from a dead leader,
keeps a miner held asleep asleep and settles the commands the last one left in flight."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from hcp import bootstrap
from hcp.adapters.db.dispatch_log import SqlCommandLog
from hcp.adapters.db.dispatch_memory import SqlDispatchMemory
from hcp.adapters.devices.site_file import DeviceFile
from hcp.dispatch import Action, Command, CommandOutcome, MinerMemory, OutcomeStatus, Trouble
from hcp.domain.devices import DeviceKind
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.services.control import TickOutcome
from hcp.simulators.asic.config import Faults
from hcp.simulators.site import SimulatedSite
from tests.integration.livesite import LiveSite, live_site

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


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


# --- the live site ------------------------------------------------------------------------

SICK = "site-west-1-asic-00002"  # index 1 of the simulated fleet


async def _trip(site: LiveSite) -> TickOutcome:
    """All four miners hash; then SICK loses a board and is put to sleep (sent, and not yet
    confirmed); the board comes back at once: the next reading is healthy, and held asleep."""
    control = site.live.control
    await control.poll()
    first = await control.tick()
    assert first.plan is not None and first.plan.asic_target({"S21"}) == {"S21": {"stock": 4}}
    await site.live.dispatcher.delivered()
    assert isinstance(site.live.site, SimulatedSite)
    await site.live.site.asic_fleet.set_faults(1, Faults(dead_boards=1))
    site.clock.advance(timedelta(minutes=5))
    await control.poll()
    outcome = await control.tick()
    await site.live.dispatcher.delivered()
    await site.live.site.asic_fleet.set_faults(1, Faults())
    assert _log(site, SICK) == [("sleep", 1, "sent")]
    assert site.live.dispatcher.held_asleep() == {SICK}
    return outcome


def _log(site: LiveSite, device_id: str) -> list[tuple[str, int, str]]:
    """The device's commands in the store, oldest first: (action, attempt, status)."""
    records = site.runtime.platform.dispatch_log.recent(device_id=device_id)
    return [(r.action, r.attempt, r.status) for r in reversed(records)]


def _host_port(address: str | None) -> tuple[str, int]:
    host, _, port = (address or "").rpartition(":")
    return host, int(port)


def _running(outcome: TickOutcome) -> dict[str, dict[str, int]]:
    assert outcome.errors == [] and outcome.plan is not None
    return outcome.plan.asic_target({"S21"})


async def test_a_restarted_controller_keeps_a_held_miner_asleep_and_settles_its_command(
    tmp_path: Path,
) -> None:
    """The controller restarts while SICK's sleep is in flight (the simulated miners start
    afresh, all hashing). The new one holds SICK asleep, out of the plan: the sleep left in
    flight fails at its deadline as usual, and the next one, the second attempt, lands."""
    async with live_site(tmp_path, site_asics=4, site_gpus=0, planner="breakeven") as site:
        await _trip(site)
        await site.restart()
        control, dispatcher = site.live.control, site.live.dispatcher
        assert dispatcher.held_asleep() == {SICK}

        site.clock.advance(timedelta(seconds=30))
        await control.poll()
        assert _log(site, SICK) == [("sleep", 1, "failed")]  # it hashes: past its deadline
        assert _running(await control.tick()) == {"S21": {"stock": 3}}
        await dispatcher.delivered()
        assert _log(site, SICK) == [("sleep", 1, "failed"), ("sleep", 2, "sent")]
        site.clock.advance(timedelta(seconds=30))
        await control.poll()
        assert _log(site, SICK) == [("sleep", 1, "failed"), ("sleep", 2, "confirmed")]
        assert dispatcher.held_asleep() == {SICK}


async def test_a_standby_taking_over_from_a_dead_leader_carries_on_from_its_memory(
    tmp_path: Path,
) -> None:
    """The leader sleeps SICK and dies (its loop stops, nothing more is written). A standby
    on the same store reaches the same miners (a devices file): its first poll confirms the
    sleep the leader left in flight, and it keeps SICK asleep and out of the plan."""
    async with live_site(tmp_path, site_asics=4, site_gpus=0, planner="breakeven") as leader:
        await _trip(leader)
        settings = leader.runtime.settings
        with leader.runtime.unit_of_work() as uow:  # the miners in the site's order
            miners = uow.fleet.devices(site_id=settings.site_id, kind=DeviceKind.ASIC)
        addresses = tuple(_host_port(d.address) for d in miners)
        path = tmp_path / "devices.toml"
        file = DeviceFile(path, addresses, "127.0.0.1", 4028, "http://127.0.0.1:9/{node}")
        # It died between logging a command and remembering it in flight: nothing knows it.
        stray = command(0, device_id="site-west-1-asic-00001", issued_at=leader.clock.now())
        log = SqlCommandLog(leader.runtime.engine, settings.site_id)
        log.record(stray)
        log.flush()
        standby = bootstrap.build(settings.model_copy(update={"devices_file": path}), leader.clock)
        try:
            bootstrap.prepare(standby)
            live = await bootstrap.start_live(standby, file)
            try:
                assert live.dispatcher.held_asleep() == {SICK}
                assert log.recent(device_id=stray.device_id, limit=1)[0].status == "failed"
                leader.clock.advance(timedelta(seconds=30))
                await live.control.poll()
                assert _log(leader, SICK) == [("sleep", 1, "confirmed")]
                outcome = await live.control.tick()
                await live.dispatcher.delivered()
                assert _running(outcome) == {"S21": {"stock": 3}}
                assert _log(leader, SICK) == [("sleep", 1, "confirmed")]  # no wake
            finally:
                await bootstrap.stop_live(live)
        finally:
            standby.close()
