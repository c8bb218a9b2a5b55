"""Engines for the two supported backends, with the per-connection settings that make them safe.

SQLite: WAL, a busy timeout and foreign keys on *every* pooled connection (they are per-connection PRAGMAs), and
write transactions that start with ``BEGIN IMMEDIATE``. A deferred transaction that reads first and writes later
cannot wait for the lock: SQLite fails it at once with "database is locked" whatever the busy timeout says.

PostgreSQL: psycopg 3, lists sent as binary arrays (append ordering is handled in the store).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from kanmon.store.errors import UnusableStore

__all__ = [
    "SUPPORTED_URLS",
    "WRITE",
    "describe_url",
    "describe_url_safely",
    "is_url",
    "make_engine",
    "sqlite_url",
    "url_problem",
]

# What to write instead, in every message about a URL kanmon cannot use.
SUPPORTED_URLS = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_POSTGRES_DRIVERS = ("postgresql", "postgresql+psycopg")

# Execution option that marks a connection as a writer; see _begin.
WRITE = {"kanmon_write": True}


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``."""
    return f"sqlite:///{path}"


def describe_url(url: str | URL) -> str:
    """``url`` fit for a log line or a message: the file of a SQLite URL, any other URL without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def is_url(text: str) -> bool:
    """True when ``text`` parses as a database URL at all (``scheme://…``), whether kanmon can use it or not."""
    try:
        make_url(text)
    except ArgumentError:
        return False
    return True


def url_problem(url: str | URL) -> str | None:
    """What is wrong with ``url`` as a store URL, in one line naming the URL to use instead; None when it is fine.

    kanmon speaks SQLite through the standard library (``sqlite:///PATH``, a file: an in-memory database would be
    a new empty store for each command) and PostgreSQL through psycopg 3 (``postgresql+psycopg://``, or
    ``postgresql://`` for short). Anything else, ``postgres://`` included (SQLAlchemy does not read it), is refused.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"not a database URL: use {SUPPORTED_URLS}"
    driver = parsed.drivername
    if driver in _SQLITE_DRIVERS:
        if not parsed.database or parsed.database == ":memory:":
            return "a SQLite store is a file: use sqlite:///PATH (in memory, each command would see a new empty store)"
        return None
    if driver in _POSTGRES_DRIVERS:
        return None
    if driver == "postgres" or driver.startswith(("postgres+", "postgresql+")):
        instead = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=True)
        return f"unsupported scheme {driver!r}: use {instead} (PostgreSQL through psycopg 3)"
    return f"unsupported scheme {driver!r}: use {SUPPORTED_URLS}"


def make_engine(url: str | URL, *, busy_timeout_ms: int = 30_000, pool_size: int = 5) -> Engine:
    """Create an engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://…``); no connection is made yet.

    Raises :class:`~kanmon.store.errors.UnusableStore` (one line, see :func:`url_problem`) for any other URL.
    """
    problem = url_problem(url)
    if problem is not None:
        raise UnusableStore(f"store URL {describe_url_safely(url)}: {problem}")
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms, pool_size)
    url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url, pool_size=pool_size, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    event.listen(engine, "connect", _binary_arrays)
    return engine


def _binary_arrays(dbapi_connection: Any, _record: Any) -> None:
    """Send Python lists (array parameters: :mod:`kanmon.store.pg_append`) in PostgreSQL's binary array format.

    In the text format psycopg quotes and escapes every element in Python: a batch of 256 replies took 6 ms to
    encode, 1.3 ms in binary (issue 13). Every list kanmon passes is cast to its array type in the statement.
    """
    from psycopg.types.array import ListBinaryDumper

    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def describe_url_safely(url: str | URL) -> str:
    """:func:`describe_url`, or the text as given when it does not parse as a URL at all."""
    try:
        return describe_url(url)
    except ArgumentError:
        return repr(str(url))


def create_private_file(database: Path) -> None:
    """Make the SQLite file ``database`` (and its folder) if missing, for this user only: folder 0700, file 0600.

    The store holds every chat, upload and run log; SQLite gives its ``-wal`` and ``-shm`` files the mode of the
    database file. An existing file or folder keeps its mode (the operator's choice).
    """
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):  # an empty file is an empty database to SQLite
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def _sqlite_engine(url: URL, busy_timeout_ms: int, pool_size: int) -> Engine:
    if url.database and url.database != ":memory:":
        create_private_file(Path(url.database))
    engine = create_engine(
        url,
        pool_size=pool_size,
        # connections travel between worker threads (asyncio.to_thread); the pool hands each to one thread at a time
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000, "cached_statements": 16},
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
        cursor.execute("PRAGMA cache_size = -256")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("kanmon_write") else "BEGIN")

    return engine
