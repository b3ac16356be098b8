"""Alembic environment: runs online against the engine handed over by hcp.adapters.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from hcp.adapters.db.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `hcp db upgrade`, which supplies the engine")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
