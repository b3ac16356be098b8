"""Alembic environment: runs online against the engine handed over by hcp.adapters.db.migrate.

On SQLite, foreign keys are off while migrations run: batch mode recreates a table to alter
it, and dropping the old copy of a table that other rows refer to fails with them on (a
downgrade of a database holding workloads did). The keys are checked before the migration
commits, and turned back on.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from hcp.adapters.db.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `hcp db upgrade`, which supplies the engine")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise RuntimeError(
            f"migration left {len(broken)} row(s) referring to missing ones "
            f"(first: {table} row {rowid} -> {parent})"
        )


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
