"""What ``gated status`` asks the store: chats with messages, rows waiting outside any running batch, in-flight runs.

``gated status`` runs in another process than ``gated run``, so it knows only what the store knows. A row belongs to
a run in flight when a ``session_log`` row still ``starting``/``running`` covers it (its chat, folder and topic, seq
between the run's first and last); such rows are running, not waiting.
"""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.store import Dispatch, Group, NewMessage, Run, Store


def put(store: Store, chat: str, content: str = "hi", **fields: object) -> int:
    return store.put_message(NewMessage(chat_jid=chat, content=content, sender="alice", **fields)).message.seq  # type: ignore[arg-type]


def route(store: Store, seqs: list[int], folder: str = "corp") -> None:
    store.record_dispatch([Dispatch(seq, "new", folder, "", None) for seq in seqs], max(seqs))


def start_run(store: Store, run_id: str, chat: str, seqs: list[int], status: str = "running") -> None:
    store.start_run(
        Run(
            id=run_id,
            instance="test",
            group_folder="corp",
            topic="",
            chat_jid=chat,
            runtime="process",
            status=status,  # type: ignore[arg-type]
            started_at=dt.datetime.now(dt.UTC),
            first_seq=min(seqs),
            last_seq=max(seqs),
            message_count=len(seqs),
        )
    )


@pytest.fixture
def corp(store: Store) -> Store:
    store.add_group(Group(folder="corp"))
    return store


def test_the_rows_of_a_running_batch_are_not_waiting(corp: Store) -> None:
    batch = [put(corp, "telegram:1", "a"), put(corp, "telegram:1", "b")]
    other = put(corp, "telegram:2")
    after = put(corp, "telegram:1", "came while it ran")
    route(corp, [*batch, other, after])
    start_run(corp, "run-1", "telegram:1", batch)

    waiting = {chat.chat_jid: chat for chat in corp.waiting_chats()}
    assert set(waiting) == {"telegram:1", "telegram:2"}
    assert (waiting["telegram:1"].waiting, waiting["telegram:1"].oldest_seq) == (1, after)
    assert (waiting["telegram:2"].waiting, waiting["telegram:2"].oldest_seq) == (1, other)
    assert [row.seq for row in corp.waiting_rows()] == [other, after]
    assert [run.id for run in corp.active_runs()] == ["run-1"]


def test_a_finished_run_s_rows_still_waiting_are_waiting_again(corp: Store) -> None:
    batch = [put(corp, "telegram:1")]
    route(corp, batch)
    start_run(corp, "run-1", "telegram:1", batch, status="error")  # failed without output: retried later
    [chat] = corp.waiting_chats()
    assert (chat.chat_jid, chat.waiting) == ("telegram:1", 1)
    assert corp.active_runs() == []


def test_rows_the_loop_has_not_read_yet_are_waiting_and_counted_as_such(corp: Store) -> None:
    routed = put(corp, "telegram:1")
    route(corp, [routed])
    put(corp, "telegram:1")  # past the poll cursor: not read by the loop yet
    [chat] = corp.waiting_chats()
    assert (chat.waiting, chat.unrouted, chat.oldest_seq) == (2, 1, routed)
    assert [row.seq for row in corp.waiting_rows()] == [routed]  # only routed rows have a decided hold


def test_waiting_rows_are_read_back_at_most_a_limit_per_chat(corp: Store) -> None:
    first = [put(corp, "telegram:1") for _ in range(3)]
    second = [put(corp, "telegram:2") for _ in range(3)]
    route(corp, first + second)
    assert [row.seq for row in corp.waiting_rows(per_chat=2)] == [*first[:2], *second[:2]]


def test_the_chat_count_is_every_chat_messages_came_from(corp: Store) -> None:
    """The ``chats`` table has a row only for a chat with state (a cursor, a sticky, an adapter of record)."""
    for chat in ("telegram:1", "telegram:2", "web:corp"):
        put(corp, chat)
    put(corp, "telegram:1")
    corp.put_message(NewMessage(chat_jid="daemon:hook", content="forwarded", direction="out"))  # an outbox
    corp.set_agent_cursor("telegram:9", 0)  # a chat with state but no message
    assert corp.chat_count() == 3
