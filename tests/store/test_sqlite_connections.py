"""SQLite's per-connection settings really apply on every pooled connection."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kanmon.store import Store, StoreUnavailable, upgrade


def open_store(tmp_path: Path, busy_timeout_ms: int = 4321) -> Store:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}", busy_timeout_ms=busy_timeout_ms, pool_size=4)
    upgrade(store.engine)
    return store


def test_every_pooled_connection_has_the_busy_timeout_foreign_keys_and_wal(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    # hold several connections at once so the pool must open distinct ones
    connections = [store.engine.connect() for _ in range(4)]
    try:
        for conn in connections:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 4321
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert len({id(c.connection.dbapi_connection) for c in connections}) == 4
    finally:
        for conn in connections:
            conn.close()
        store.close()


def test_the_database_file_lives_where_the_url_says(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'kanmon.db'}")
    upgrade(store.engine)
    store.close()
    assert (tmp_path / "deep" / "dir" / "kanmon.db").is_file()


def test_a_writer_waits_for_a_lock_held_briefly_instead_of_failing(tmp_path: Path) -> None:
    store = open_store(tmp_path, busy_timeout_ms=10_000)
    blocker = sqlite3.connect(tmp_path / "kanmon.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: blocker.execute("COMMIT")).start()
    store.set_state("k", "v")  # blocks ~0.5 s on the lock, then succeeds
    assert store.get_state("k") == "v"
    blocker.close()
    store.close()


def test_a_lock_held_past_the_busy_timeout_raises_store_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path, busy_timeout_ms=200)
    blocker = sqlite3.connect(tmp_path / "kanmon.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.set_state("k", "v")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.get_state("k") is None
    store.close()
