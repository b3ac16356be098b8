"""Every dispatch command and its outcome, stored (the CommandLog port on SQLAlchemy); and each
site's last tick of dispatch (the DispatchStatusStore port)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Engine, Update, bindparam, select, update

from hcp.adapters.db.engine import make_session_factory
from hcp.adapters.db.tables import Base, DispatchCommandRow, DispatchStatusRow
from hcp.dispatch.model import Action, Command, CommandOutcome, OutcomeStatus
from hcp.services.ports import DispatchStatus, StoredCommand

log = logging.getLogger(__name__)

KEEP_FAILED_FLUSHES = 5
"""Writes a batch of commands and outcomes is tried for before it is dropped (logged)."""


class SqlCommandLog:
    """Commands and outcomes are buffered as the dispatcher records them and written in one
    transaction by `flush` (once per dispatch: ten thousand commits for ten thousand miners
    would cost seconds)."""

    def __init__(self, engine: Engine, site_id: str | None = None) -> None:
        self._sessions = make_session_factory(engine)
        self._site_id = site_id
        self._lock = threading.Lock()  # the buffers
        # Flushes one at a time: an outcome's UPDATE must not commit before the INSERT of its
        # command, which an overlapping flush (a background send beside a confirm) may hold.
        self._flushing = threading.Lock()
        self._commands: list[Command] = []
        self._outcomes: list[CommandOutcome] = []
        self._failures = 0  # flushes failed in a row

    def record(self, command: Command) -> None:
        with self._lock:
            self._commands.append(command)

    def record_outcome(self, outcome: CommandOutcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)

    def flush(self) -> int:
        """Write what was recorded since the last flush; how many rows changed. A write that
        fails keeps what it held for the next flush (ahead of what came meanwhile) and raises;
        after `KEEP_FAILED_FLUSHES` failures in a row the rows are dropped, logged, so that
        one row the store refuses for good cannot stop the log."""
        with self._flushing:
            with self._lock:
                commands, self._commands = self._commands, []
                outcomes, self._outcomes = self._outcomes, []
            if not commands and not outcomes:
                return 0
            try:
                with self._sessions() as session, session.begin():
                    session.add_all(self._row(c) for c in commands)
                    session.flush()
                    for outcome in outcomes:
                        session.execute(_outcome_update(outcome))
            except BaseException:
                self._failures += 1
                if self._failures < KEEP_FAILED_FLUSHES:
                    with self._lock:
                        self._commands[:0] = commands
                        self._outcomes[:0] = outcomes
                else:
                    self._failures = 0
                    log.error(
                        "the command log failed %d writes in a row: %d commands and %d "
                        "outcomes are not stored",
                        KEEP_FAILED_FLUSHES,
                        len(commands),
                        len(outcomes),
                    )
                raise
            self._failures = 0
            return len(commands) + len(outcomes)

    def fail_unknown(self, known: Collection[str], at: datetime, detail: str) -> int:
        """Mark failed, with `detail`, the site's miner commands still stored as sent but for
        those in `known` (the commands in flight the dispatcher knows of): nothing would ever
        settle them (a controller that stopped between logging a command and remembering it
        in flight). How many there were."""
        row = DispatchCommandRow
        query = select(row.id).where(
            row.site_id == self._site_id,
            row.status == "sent",
            row.action.in_([action.value for action in Action]),
        )
        with self._sessions() as session, session.begin():
            unknown = [i for i in session.scalars(query) if i not in known]
            if unknown:
                table = Base.metadata.tables[row.__tablename__]
                statement = (
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values(status=OutcomeStatus.FAILED.value, outcome_at=at, detail=detail)
                )
                session.connection().execute(statement, [{"b_id": i} for i in unknown])
        return len(unknown)

    def _row(self, command: Command) -> DispatchCommandRow:
        return DispatchCommandRow(
            id=command.id,
            issued_at=command.issued_at,
            site_id=self._site_id,
            device_id=command.device_id,
            address=command.address,
            action=command.action.value,
            profile=command.profile,
            reason=command.reason,
            attempt=command.attempt,
            confirm_by=command.confirm_by,
            status="sent",
        )

    def add(self, commands: Sequence[StoredCommand]) -> None:
        """Store commands already carried out, as they are (GPU nodes' starts and stops)."""
        if not commands:
            return
        with self._sessions() as session, session.begin():
            session.add_all(self._stored_row(c) for c in commands)

    def _stored_row(self, command: StoredCommand) -> DispatchCommandRow:
        return DispatchCommandRow(site_id=self._site_id, **asdict(command))

    def recent(self, limit: int = 100, device_id: str | None = None) -> list[StoredCommand]:
        """Newest first."""
        self.flush()
        query = select(DispatchCommandRow).order_by(
            DispatchCommandRow.issued_at.desc(), DispatchCommandRow.id
        )
        if device_id is not None:
            query = query.where(DispatchCommandRow.device_id == device_id)
        with self._sessions() as session:
            return [_stored(r) for r in session.scalars(query.limit(limit))]


def _outcome_update(outcome: CommandOutcome) -> Update:
    row = DispatchCommandRow
    return (
        update(row)
        .where(row.id == outcome.command.id)
        .values(status=outcome.status.value, outcome_at=outcome.at, detail=outcome.detail)
    )


def _stored(r: DispatchCommandRow) -> StoredCommand:
    return StoredCommand(
        r.id,
        r.issued_at,
        r.device_id,
        r.address,
        r.action,
        r.profile,
        r.reason,
        r.attempt,
        r.confirm_by,
        r.status,
        r.outcome_at,
        r.detail,
    )


class SqlDispatchStatus:
    """Each site's latest `DispatchStatus`, one row per site: the controller writes it, any
    API process (`hcp up`'s own, or an `hcp api` replica) reads it."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = make_session_factory(engine)

    def save(self, status: DispatchStatus) -> None:
        with self._sessions() as session, session.begin():
            session.merge(
                DispatchStatusRow(
                    site_id=status.site_id,
                    at=status.at,
                    commands=status.commands,
                    sent=status.sent,
                    power_increase_w=status.power_increase_w,
                    deferred=list(status.deferred),
                    shortfall=dict(status.shortfall),
                    unhealthy=dict(status.unhealthy),
                    degraded=dict(status.degraded),
                )
            )

    def latest(self, site_id: str | None = None) -> DispatchStatus | None:
        query = select(DispatchStatusRow)
        if site_id is None:
            query = query.order_by(DispatchStatusRow.at.desc(), DispatchStatusRow.site_id)
        else:
            query = query.where(DispatchStatusRow.site_id == site_id)
        with self._sessions() as session:
            row = session.scalars(query.limit(1)).first()
            if row is None:
                return None
            return DispatchStatus(
                row.site_id,
                row.at,
                row.commands,
                row.sent,
                row.power_increase_w,
                tuple(row.deferred),
                dict(row.shortfall),
                dict(row.unhealthy),
                dict(row.degraded),
            )
