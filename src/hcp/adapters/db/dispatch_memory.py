"""What a site's miner dispatcher remembers of each miner, stored (the DispatchMemoryStore port
on SQLAlchemy): one row per miner, replaced by an upsert of the miners whose memory changed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Insert, RowMapping, Table, select

from hcp.adapters.db.engine import conflict_insert
from hcp.adapters.db.tables import Base, DispatchMemoryRow
from hcp.dispatch.ledger import MinerMemory
from hcp.dispatch.model import Action, Command, Trouble
from hcp.domain.telemetry import AsicReading, MinerState


class SqlDispatchMemory:
    """The memory of one site's dispatcher. `save` writes in one statement (an executemany of
    one upsert) and one transaction; `load` reads the whole site back."""

    def __init__(self, engine: Engine, site_id: str) -> None:
        self._engine = engine
        self._site_id = site_id
        self._upsert = _upsert(engine.dialect.name)

    def save(self, memories: Sequence[MinerMemory]) -> None:
        if not memories:
            return
        site_id = self._site_id
        rows = [_row(site_id, memory) for memory in memories]
        with self._engine.begin() as connection:
            connection.execute(self._upsert, rows)

    def load(self) -> list[MinerMemory]:
        table = _table()
        query = select(table).where(table.c.site_id == self._site_id)
        with self._engine.connect() as connection:
            return [_memory(row._mapping) for row in connection.execute(query)]


def _upsert(dialect: str) -> Insert:
    table = _table()
    statement = conflict_insert(dialect, table)
    kept = {c.name: statement.excluded[c.name] for c in table.columns if not c.primary_key}
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[table.c.site_id, table.c.device_id], set_=kept
    )
    return upsert


def _table() -> Table:
    return Base.metadata.tables[DispatchMemoryRow.__tablename__]


def _row(site_id: str, memory: MinerMemory) -> dict[str, Any]:
    trouble = memory.trouble
    return {
        "site_id": site_id,
        "device_id": memory.device_id,
        "pending": _command(memory.pending),
        "confirmed": _command(memory.confirmed),
        "failed": _command(memory.failed),
        "degraded_until": memory.degraded_until,
        "last_mining": _reading(memory.last_mining),
        "trouble": None if trouble is None else trouble.problems,
        "trouble_last_seen": None if trouble is None else trouble.last_seen,
        "trouble_trips": None if trouble is None else trouble.trips,
        "troubled": memory.troubled,
        "slept_at": memory.slept_at,
        "woken_at": memory.woken_at,
    }


def _memory(row: RowMapping) -> MinerMemory:
    trouble = None
    if row["trouble"] is not None:
        trouble = Trouble(row["trouble"], row["trouble_last_seen"], row["trouble_trips"])
    return MinerMemory(
        device_id=row["device_id"],
        pending=_command_of(row["pending"]),
        confirmed=_command_of(row["confirmed"]),
        failed=_command_of(row["failed"]),
        degraded_until=row["degraded_until"],
        last_mining=_reading_of(row["last_mining"]),
        trouble=trouble,
        troubled=row["troubled"],
        slept_at=row["slept_at"],
        woken_at=row["woken_at"],
    )


def _time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: HCP stores only timezone-aware times")
    return at.astimezone(UTC).isoformat()


def _time_of(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _command(command: Command | None) -> dict[str, Any] | None:
    if command is None:
        return None
    return {
        "id": command.id,
        "device_id": command.device_id,
        "address": command.address,
        "action": command.action.value,
        "profile": command.profile,
        "reason": command.reason,
        "issued_at": _time(command.issued_at),
        "attempt": command.attempt,
        "confirm_by": _time(command.confirm_by),
        "expected_power_w": command.expected_power_w,
        "power_increase_w": command.power_increase_w,
        "from_profile": command.from_profile,
        "power_decrease_w": command.power_decrease_w,
    }


def _command_of(stored: Mapping[str, Any] | None) -> Command | None:
    if stored is None:
        return None
    return Command(
        id=stored["id"],
        device_id=stored["device_id"],
        address=stored["address"],
        action=Action(stored["action"]),
        profile=stored["profile"],
        reason=stored["reason"],
        issued_at=_time_of(stored["issued_at"]),
        attempt=stored["attempt"],
        confirm_by=_time_of(stored["confirm_by"]),
        expected_power_w=float(stored["expected_power_w"]),
        power_increase_w=float(stored["power_increase_w"]),
        from_profile=stored["from_profile"],
        power_decrease_w=float(stored["power_decrease_w"]),
    )


def _reading(reading: AsicReading | None) -> dict[str, Any] | None:
    """A mining reading as JSON; None for one with a number JSON cannot hold (it only ranks
    a sleeping miner by efficiency: the catalog's stands in)."""
    if reading is None:
        return None
    numbers = (reading.hashrate_ths, reading.power_w, reading.temperature_c or 0.0)
    if not all(math.isfinite(n) for n in numbers):
        return None
    return {
        "device": reading.device,
        "at": _time(reading.at),
        "state": reading.state.value,
        "hashrate_ths": reading.hashrate_ths,
        "power_w": reading.power_w,
        "temperature_c": reading.temperature_c,
        "profile": reading.profile,
        "accepted_shares": reading.accepted_shares,
        "rejected_shares": reading.rejected_shares,
        "problems": list(reading.problems),
    }


def _reading_of(stored: Mapping[str, Any] | None) -> AsicReading | None:
    if stored is None:
        return None
    temperature = stored["temperature_c"]
    return AsicReading(
        device=stored["device"],
        at=_time_of(stored["at"]),
        state=MinerState(stored["state"]),
        hashrate_ths=float(stored["hashrate_ths"]),
        power_w=float(stored["power_w"]),
        temperature_c=None if temperature is None else float(temperature),
        profile=stored["profile"],
        accepted_shares=stored["accepted_shares"],
        rejected_shares=stored["rejected_shares"],
        problems=tuple(stored["problems"]),
    )
