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
from sqlalchemy import event

from kanmon.store import Dispatch, Group, NewMessage, RunBegin, RunDraft, RunEnd, Store, upgrade

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    yield store
    store.close()


def captured(store: Store) -> list[tuple[str, Any]]:
    """Every statement (and its parameters) the store sends from now on."""
    sent: list[tuple[str, Any]] = []

    def note(conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")) and "messages" in statement:
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


def test_no_run_path_statement_reads_messages_by_status_alone(sqlite_store: Store) -> None:
    store = sqlite_store
    for folder in ("corp", "other"):
        store.add_group(Group(folder=folder))
    seqs = [
        store.put_message(NewMessage(chat_jid=f"telegram:{n % 4}", content="hi", sender="alice"), now=NOW).message.seq
        for n in range(40)
    ]
    sent = captured(store)
    store.record_dispatch(
        [Dispatch(seq, "new", "corp" if seq % 2 else "other", "", None) for seq in seqs[:-2]]
        + [Dispatch(seqs[-2], "done"), Dispatch(seqs[-1], "skipped")],
        seqs[-1],
        now=NOW,
    )
    draft = RunDraft(id="r1", instance="i", runtime="process", started_at=NOW)
    [start] = store.begin_runs([RunBegin(draft=draft, folder="corp", accept=lambda head: True)], now=NOW)
    assert start is not None and len(start.rows) > 1
    reply = NewMessage(
        chat_jid=start.head.chat_jid, id="run-r1-0", content="ok", direction="out", run_id="r1", output_index=0
    )
    store.record_replies([reply], now=NOW)
    [ended] = store.finish_runs(
        [RunEnd(run_id="r1", chat_jid=start.head.chat_jid, seqs=[row.seq for row in start.rows], rows="done",
                run_status="ok", folder="corp", topic="", output_count=1)],
        now=NOW,
    )  # fmt: skip
    assert ended.cursor >= start.rows[-1].seq - 3
    steps = plans(store, sent)
    assert steps, "no statement was captured"
    bad = [
        (statement, step)
        for statement, step in steps
        if step.startswith("SCAN messages") or step.endswith("ix_messages_status_routed_folder_seq (status=?)")
    ]
    assert bad == []
