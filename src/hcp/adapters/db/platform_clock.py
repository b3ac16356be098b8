"""Each site's platform clock, stored by the process that leads the site and read by API
processes (`FollowedClock`)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from hcp.adapters.clock import ClockAnchor
from hcp.adapters.db.engine import make_session_factory
from hcp.adapters.db.tables import PlatformClockRow


class SqlClockAnchors:
    def __init__(self, engine: Engine, site_id: str) -> None:
        self._sessions = make_session_factory(engine)
        self._site_id = site_id

    def save(self, anchor: ClockAnchor) -> None:
        with self._sessions() as session, session.begin():
            session.merge(
                PlatformClockRow(
                    site_id=self._site_id,
                    wall_at=anchor.wall_at,
                    platform_at=anchor.platform_at,
                    speed=anchor.speed,
                )
            )

    def load(self) -> ClockAnchor | None:
        query = select(PlatformClockRow).where(PlatformClockRow.site_id == self._site_id)
        with self._sessions() as session:
            row = session.scalars(query).first()
            return None if row is None else ClockAnchor(row.wall_at, row.platform_at, row.speed)
