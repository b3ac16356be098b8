"""Alembic environment: runs online against the engine handed over by hcp.adapters.db.migrate.

Every migration of one upgrade or downgrade runs in one transaction: on PostgreSQL as it
comes, on SQLite by an explicit BEGIN (the sqlite3 driver begins a transaction only before
INSERT, UPDATE or DELETE, so DDL committed statement by statement, and an upgrade killed or
failed midway left half a schema that no later upgrade could pass).

On SQLite, foreign keys are off while migrations run: batch mode recreates a table to alter
it, and dropping the old copy of a table that other rows refer to fails with them on (a
downgrade of a database holding workloads did). They are checked before the commit, and
turned back on.
"""

from __future__ import annotations

from collections import Counter

from alembic import context
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine

from hcp.adapters.db.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `hcp db upgrade`, which supplies the engine")


def _migrate(connection: Connection, *, sqlite: bool) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _dangling(connection: Connection) -> Counter[tuple[str, str]]:
    """Rows referring to missing ones, counted by (table, table referred to)."""
    rows = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    return Counter((str(table), str(parent)) for table, _, parent, _ in rows)


def _check_foreign_keys(connection: Connection, before: Counter[tuple[str, str]]) -> None:
    """Refuse a migration that leaves rows referring to missing ones; rows that did so before
    it ran are not its doing."""
    added = _dangling(connection) - before
    if added:
        (table, parent), count = next(iter(added.items()))
        raise CommandError(
            f"the migration would leave {sum(added.values())} row(s) referring to missing "
            f"ones (first: {count} in {table} -> {parent}); nothing was changed"
        )


with engine.connect() as connection:
    if connection.dialect.name != "sqlite":
        with connection.begin():
            _migrate(connection, sqlite=False)
    else:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
        connection.commit()
        try:
            with connection.begin():  # commits or rolls back the BEGIN below
                connection.exec_driver_sql("BEGIN")
                before = _dangling(connection)
                _migrate(connection, sqlite=True)
                _check_foreign_keys(connection, before)
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
