"""Alembic environment: runs on the connection kanmon.store.migrate hands over (or on sqlalchemy.url)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kanmon.store.engine import make_engine
from kanmon.store.tables import metadata


def run_migrations(connection: Connection) -> None:
    """Run the pending migrations in one transaction on ``connection``."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite:///kanmon-data/kanmon.db")
    with engine.connect() as conn:
        run_migrations(conn)
    engine.dispose()
