"""What the benchmarks share: a fresh store per pass on SQLite or PostgreSQL, and a line saying what they ran on.

``--url`` names where stores are made: nothing (the default) makes each pass an SQLite file in a temporary directory;
a PostgreSQL URL (``postgresql+psycopg://user@host:port/postgres``) is used as a maintenance database in which each
pass creates a database of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, create_engine, func, select, text
from sqlalchemy.engine import make_url

from kanmon.store import Store, upgrade
from kanmon.store.tables import messages

__all__ = ["add_url_option", "describe", "fresh_store", "read_row", "run_replies"]


def add_url_option(parser: argparse.ArgumentParser) -> None:
    """``--url``: where the benchmark's stores are made (see the module docstring)."""
    parser.add_argument(
        "--url",
        default="",
        help="empty: SQLite files in a temp dir; a PostgreSQL URL: a fresh database per pass on that server",
    )


@contextmanager
def fresh_store(url: str, directory: Path, *, pool_size: int = 5) -> Iterator[Store]:
    """A migrated, empty store for one pass, removed afterwards."""
    if not url:
        directory.mkdir(parents=True, exist_ok=True)
        store = Store.open(f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:8]}.db'}", pool_size=pool_size)
        upgrade(store.engine)
        try:
            yield store
        finally:
            store.close()
        return
    name = f"kanmon_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    store = Store.open(make_url(url).set(database=name).render_as_string(hide_password=False), pool_size=pool_size)
    try:
        upgrade(store.engine)
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def describe(url: str) -> str:
    """One line: the backend, the machine, and how loaded it was when the benchmark started."""
    if url:
        engine = create_engine(url)
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar())
        engine.dispose()
        backend = f"PostgreSQL {version} at {make_url(url).host}"
    else:
        import sqlite3

        backend = f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL) in {tempfile.gettempdir()}"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{backend}; Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load}"


def read_row(store: Store, query: Executable) -> tuple[Any, ...]:
    """The one row ``query`` answers, read on the store's own pool the way the store reads: in a transaction ended by
    COMMIT, since a ROLLBACK makes psycopg forget what it prepared on that connection (:mod:`kanmon.store.base`), and
    a harness that rolled back would slow down the gated it measures."""
    with store.engine.begin() as conn:
        return tuple(conn.execute(query).one())


def run_replies(store: Store) -> int:
    """How many outbound rows runs have written (replies)."""
    return int(read_row(store, select(func.count()).select_from(messages).where(messages.c.run_id.is_not(None)))[0])
