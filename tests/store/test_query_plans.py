"""The run path's statements find their rows by key, not by walking every waiting row (issue 13).

SQLite has no statistics unless ``ANALYZE`` ran, so it picks an index by the shape of a query alone: a run's end that
said only ``seq IN (…) AND status = 'new'`` was answered through the ``(status, routed_folder, seq)`` index by
reading every waiting row of every folder, which made each run's end cost as much as the backlog was long. This
records every statement a tick, a run's begin, its replies and its end send to SQLite and asks SQLite how it would
answer each: none may read ``messages`` by its status alone or scan the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from kanmon.store import Dispatch, Group, NewMessage, RunBegin, RunDraft, RunEnd, Store, upgrade
from kanmon.store.tables import messages
from tests.pgdb import create_pg_database, drop_pg_database

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    yield store
    store.close()


def captured(store: Store, tables: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Every statement (and its parameters) the store sends from now on that reads or changes one of ``tables``."""
    sent: list[tuple[str, Any]] = []

    def note(conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool) -> None:
        reads = statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
        if reads and any(table in statement for table in tables):
            sent.append((statement, parameters[0] if many else parameters))

    event.listen(store.engine, "before_cursor_execute", note)
    return sent


def plans(store: Store, sent: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """SQLite's plan of each statement: (statement, each plan step of it)."""
    steps: list[tuple[str, str]] = []
    with store.engine.connect() as conn:
        for statement, parameters in sent:
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters):
                steps.append((statement, str(row[3])))
    return steps


def run_path(store: Store, backlog: int = 0, tables: tuple[str, ...] = ("messages",)) -> list[tuple[str, Any]]:
    """A tick, two runs' begins, their replies and their ends together (one of them with a session to keep), over 40
    routed rows and ``backlog`` rows of other chats waiting for a third group; every statement they sent that reads
    or changes one of ``tables`` (with its parameters)."""
    for folder in ("corp", "other", "busy"):
        store.add_group(Group(folder=folder))
    waiting = [
        {"id": f"b{n}", "chat_jid": f"telegram:busy{n % 500}", "direction": "in", "sender": "bob", "content": "hi",
         "verb": "message", "topic": "", "timestamp": NOW, "received_at": NOW, "status": "new",
         "routed_folder": "busy", "routed_topic": ""}
        for n in range(backlog)
    ]  # fmt: skip
    if waiting:
        with store.engine.begin() as conn:
            conn.execute(insert(messages), waiting)
    seqs = [
        store.put_message(NewMessage(chat_jid=f"telegram:{n % 4}", content="hi", sender="alice"), now=NOW).message.seq
        for n in range(40)
    ]
    sent = captured(store, tables)
    store.record_dispatch(
        [Dispatch(seq, "new", "corp" if seq % 2 else "other", "", None) for seq in seqs[:-2]]
        + [Dispatch(seqs[-2], "done"), Dispatch(seqs[-1], "skipped")],
        seqs[-1],
        now=NOW,
    )
    starts = store.begin_runs(
        [
            RunBegin(draft=RunDraft(id=f"r-{folder}", instance="i", runtime="process", started_at=NOW), folder=folder,
                     accept=lambda head: True)
            for folder in ("corp", "other")
        ],
        now=NOW,
    )  # fmt: skip
    ends = []
    for start in starts:
        assert start is not None and len(start.rows) > 1
        run = start.run
        reply = NewMessage(
            chat_jid=run.chat_jid, id=f"run-{run.id}-0", content="ok", direction="out", run_id=run.id, output_index=0
        )
        store.record_replies([reply], now=NOW)
        ends.append(
            RunEnd(run_id=run.id, chat_jid=run.chat_jid, seqs=[row.seq for row in start.rows], rows="done",
                   run_status="ok", folder=run.group_folder, topic="", output_count=1,
                   session_id="s-corp" if run.group_folder == "corp" else None)
        )  # fmt: skip
    ended = store.finish_runs(ends, now=NOW)  # two lanes' ends in one transaction, as runs ending together share
    for start, end in zip(starts, ended, strict=True):
        assert start is not None and end.cursor >= start.rows[-1].seq - 3
    assert sent, "no statement was captured"
    return sent


def test_no_run_path_statement_reads_messages_by_status_alone(sqlite_store: Store) -> None:
    steps = plans(sqlite_store, run_path(sqlite_store))
    bad = [
        (statement, step)
        for statement, step in steps
        if step.startswith("SCAN messages") or step.endswith("ix_messages_status_routed_folder_seq (status=?)")
    ]
    assert bad == []


def test_the_run_paths_session_reads_find_their_rows_by_primary_key(sqlite_store: Store) -> None:
    """A run's begin reads the sessions of several ``(folder, topic)`` keys at once, its end their untold resets, as
    ``folder IN (…) AND topic IN (…)`` filtered in Python. SQLite answers that through the primary key; the exact
    row-value form, ``(folder, topic) IN (VALUES …)``, which SQLAlchemy renders for ``tuple_().in_()``, made SQLite
    3.40 scan the whole table."""
    steps = plans(sqlite_store, run_path(sqlite_store, tables=("sessions", "session_resets")))
    read = {table for _, step in steps for table in ("sessions", "session_resets") if f" {table} " in f"{step} "}
    assert read == {"sessions", "session_resets"}, "the run path read both tables"
    assert [(statement, step) for statement, step in steps if step.startswith("SCAN")] == []


def test_the_run_paths_reads_of_runs_find_them_through_an_index(sqlite_store: Store) -> None:
    """A run's begin reads the sessions that runs in flight hold (one run per session,
    :mod:`kanmon.store.run_begins`), its end updates its row: ``session_log`` keeps a row for every run ever made, so
    neither may walk it."""
    steps = plans(sqlite_store, run_path(sqlite_store, tables=("session_log",)))
    read = [(statement, step) for statement, step in steps if "session_log" in step]
    assert any(statement.lstrip().upper().startswith("SELECT") for statement, _ in read), "the begin read no runs"
    assert [(statement, step) for statement, step in read if step.startswith("SCAN")] == []


@pytest.mark.postgres
def test_no_run_path_statement_reads_every_waiting_row_on_postgres(pg_admin_url: str, pg_template: str) -> None:
    """The same on PostgreSQL before any ANALYZE (a burst's rows are newer than the statistics): the planner took
    the (status, routed_folder, seq) index for ``status = 'new'`` alone and read every waiting row, once for the
    rows' new status and once for each chat's cursor, at the end of every run (issue 13: 13 ms per transaction of
    run ends with 10,000 rows waiting)."""
    url = create_pg_database(pg_admin_url, template=pg_template)
    store = Store.open(url)
    try:
        sent = run_path(store, backlog=10_000)
        bad = []
        with store.engine.connect() as conn:
            for statement, parameters in sent:
                plan = [str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
                for line, following in zip(plan, [*plan[1:], ""], strict=True):
                    by_status = "ix_messages_status_routed_folder_seq" in line and "routed_folder" not in following
                    if by_status:  # (a scan of the whole table is the planner's right choice while it is small)
                        bad.append(f"{statement[:60]}…: {line.strip()} / {following.strip()}")
        assert bad == []
    finally:
        store.close()
        drop_pg_database(pg_admin_url, url)
