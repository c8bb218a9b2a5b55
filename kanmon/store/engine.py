"""Engines for the two supported backends, with the per-connection settings that make them safe.

SQLite: WAL, a busy timeout and foreign keys on *every* pooled connection (they are per-connection PRAGMAs), and
write transactions that start with ``BEGIN IMMEDIATE``. A deferred transaction that reads first and writes later
cannot wait for the lock: SQLite fails it at once with "database is locked" whatever the busy timeout says.

PostgreSQL: psycopg 3; nothing special here (append ordering is handled in the store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

__all__ = ["WRITE", "describe_url", "make_engine", "sqlite_url"]

# Execution option that marks a connection as a writer; see _begin.
WRITE = {"kanmon_write": True}


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``."""
    return f"sqlite:///{path}"


def describe_url(url: str) -> str:
    """``url`` fit for a log line or a message: the file of a SQLite URL, any other URL without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str | URL, *, busy_timeout_ms: int = 30_000, pool_size: int = 5) -> Engine:
    """Create an engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``)."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms, pool_size)
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, pool_size=pool_size, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise ValueError(f"unsupported store URL scheme {url.drivername!r}: use sqlite:/// or postgresql+psycopg://")


def _sqlite_engine(url: URL, busy_timeout_ms: int, pool_size: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        # connections travel between worker threads (asyncio.to_thread); the pool hands each to one thread at a time
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module, so _begin decides how each transaction starts
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("kanmon_write") else "BEGIN")

    return engine
