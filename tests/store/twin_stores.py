"""Two stores with one history, and the rows an example made in one: for tests that compare two ways of writing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Table, event, select

from kanmon.store import Store, upgrade
from kanmon.store.tables import chats, messages, run_logs, session_log, session_resets, sessions, system_messages, usage
from tests.pgdb import create_pg_database, drop_pg_database

__all__ = ["rows_of", "statements_sent", "twins"]


@pytest.fixture
def twins(store_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two migrated stores on the backend this test runs on."""
    if store_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path / 'twin.db'}"
        twin = Store.open(other_url)
        upgrade(twin.engine)
        twin.close()
    else:
        admin_url = request.getfixturevalue("pg_admin_url")
        other_url = create_pg_database(admin_url, template=request.getfixturevalue("pg_template"))
    stores = Store.open(store_url), Store.open(other_url)
    yield stores
    for store in stores:
        store.close()
    if not store_url.startswith("sqlite"):
        drop_pg_database(request.getfixturevalue("pg_admin_url"), other_url)


def rows_of(store: Store, tag: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a run writes whose key column contains ``tag`` (the rows one example made), table by
    table, in a fixed order."""
    with store.engine.connect() as conn:
        return {
            name: sorted((tuple(row) for row in conn.execute(select(table).where(key.like(f"%{tag}%")))), key=repr)
            for name, (table, key) in RUN_TABLES.items()
        }


def statements_sent(store: Store, call: Callable[[], object]) -> list[str]:
    """The SQL statements ``store`` sent while ``call()`` ran (SQLite's implicit BEGIN is not one)."""
    sent: list[str] = []

    def note(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", note)
    return sent


#: the tables a run's begin and end write, each with a column that names the example's groups or chats
RUN_TABLES: dict[str, tuple[Table, Column[Any]]] = {
    "messages": (messages, messages.c.chat_jid),
    "sessions": (sessions, sessions.c.group_folder),
    "session_resets": (session_resets, session_resets.c.group_folder),
    "session_log": (session_log, session_log.c.group_folder),
    "system_messages": (system_messages, system_messages.c.group_folder),
    "chats": (chats, chats.c.jid),
    "run_logs": (run_logs, run_logs.c.run_id),
    "usage": (usage, usage.c.run_id),
}
