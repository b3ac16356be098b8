"""Fixtures the integration suites share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.migrate import upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database (SQLite and PostgreSQL) migrated to the latest schema."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
