"""Every dispatch command and its outcome, stored (the CommandLog port on SQLAlchemy)."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from hcp.adapters.db.engine import make_session_factory
from hcp.adapters.db.tables import DispatchCommandRow
from hcp.dispatch.model import Command, CommandOutcome
from hcp.services.ports import StoredCommand


class SqlCommandLog:
    def __init__(self, engine: Engine, site_id: str | None = None) -> None:
        self._sessions = make_session_factory(engine)
        self._site_id = site_id

    def record(self, command: Command) -> None:
        with self._sessions() as session, session.begin():
            session.add(
                DispatchCommandRow(
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
            )

    def record_outcome(self, outcome: CommandOutcome) -> None:
        row = DispatchCommandRow
        statement = (
            update(row)
            .where(row.id == outcome.command.id)
            .values(status=outcome.status.value, outcome_at=outcome.at, detail=outcome.detail)
        )
        with self._sessions() as session, session.begin():
            session.execute(statement)

    def recent(self, limit: int = 100, device_id: str | None = None) -> list[StoredCommand]:
        """Newest first."""
        query = select(DispatchCommandRow).order_by(
            DispatchCommandRow.issued_at.desc(), DispatchCommandRow.id
        )
        if device_id is not None:
            query = query.where(DispatchCommandRow.device_id == device_id)
        with self._sessions() as session:
            return [_stored(r) for r in session.scalars(query.limit(limit))]


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
