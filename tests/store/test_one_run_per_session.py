"""Two runs never resume one session at the same time, whichever lanes they run in (``kanmon.store.run_begins``).

A session is ``(folder, topic)`` whatever the chat (SPEC §2, §10), but lanes are not: a platform chat's runs take
turns in its folder's lane, a ``web:`` topic runs in a lane of its own. So a Telegram forum thread 42 and a web topic
``42`` of one folder are two lanes on one session, and the agent would resume that session twice at once (each run
forking it, the later ``newSessionId`` winning). The store's begin is where that is decided, for one gated and for
two: a stream whose session has a run in flight (``starting``/``running``), or was taken by a run beginning in the
same transaction, waits; the folder's other streams do not.
"""

from __future__ import annotations

import datetime as dt

from kanmon.store import Dispatch, Group, LaneHead, NewMessage, RunBegin, RunDraft, RunEnd, RunStart, Store

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=1)


def waiting(store: Store, chat: str, topic: str, text: str) -> int:
    """One row of ``chat`` routed to folder ``corp`` in ``topic``, waiting for an agent; its seq."""
    new = NewMessage(chat_jid=chat, content=text, sender="a", timestamp=NOW)
    seq = store.put_message(new, now=NOW).message.seq
    store.record_dispatch([Dispatch(seq, "new", "corp", topic, None)], seq, now=NOW)
    return seq


def begin(run_id: str, *chats: str) -> RunBegin:
    """A run of folder ``corp`` that takes the streams of ``chats`` (a lane's filter), oldest first."""

    def accept(head: LaneHead) -> bool:
        return head.chat_jid in chats

    draft = RunDraft(id=run_id, instance="i", runtime="process", started_at=LATER)
    return RunBegin(draft=draft, folder="corp", accept=accept)


def finish(store: Store, start: RunStart, session_id: str) -> None:
    end = RunEnd(
        run_id=start.run.id, chat_jid=start.head.chat_jid, seqs=[row.seq for row in start.rows], rows="done",
        run_status="ok", folder="corp", topic=start.head.topic, session_id=session_id,
    )  # fmt: skip
    store.finish_runs([end], now=LATER)


def test_a_thread_and_a_web_topic_of_one_id_beginning_together_take_turns(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    thread = waiting(store, "telegram:1", "42", "in the forum thread")
    web = waiting(store, "web:corp", "42", "in the web topic")

    first, second = store.begin_runs([begin("r1", "telegram:1"), begin("r2", "web:corp")], now=LATER)

    assert first is not None and [row.seq for row in first.rows] == [thread]
    assert second is None  # the session (corp, 42) is the first run's until it ends
    finish(store, first, "s-after-thread")
    (later,) = store.begin_runs([begin("r2", "web:corp")], now=LATER)
    assert later is not None and [row.seq for row in later.rows] == [web]
    assert later.session_id == "s-after-thread"  # it resumes what the first run left, not a fork of what was before


def test_a_session_with_a_run_in_flight_waits_and_the_folders_other_streams_do_not(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    waiting(store, "web:corp", "42", "a long question")
    (running,) = store.begin_runs([begin("r1", "web:corp")], now=LATER)
    assert running is not None
    thread = waiting(store, "telegram:1", "42", "same id, another chat")
    other = waiting(store, "telegram:1", "7", "another thread")

    (start,) = store.begin_runs([begin("r2", "telegram:1")], now=LATER)

    assert start is not None and (start.head.topic, [row.seq for row in start.rows]) == ("7", [other])
    assert not start.more  # the thread 42 row waits, but cannot run before the web topic's run ends
    (blocked,) = store.begin_runs([begin("r3", "telegram:1")], now=LATER)
    assert blocked is None
    finish(store, running, "s-web")
    (after,) = store.begin_runs([begin("r3", "telegram:1")], now=LATER)
    assert after is not None and [row.seq for row in after.rows] == [thread] and after.session_id == "s-web"


def test_a_stream_skipped_for_its_session_lets_a_later_begin_of_the_transaction_take_another(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    waiting(store, "web:corp", "42", "first")
    waiting(store, "telegram:1", "42", "second")
    seven = waiting(store, "telegram:1", "7", "third")

    web, thread = store.begin_runs([begin("r1", "web:corp"), begin("r2", "telegram:1")], now=LATER)

    assert web is not None and web.head.topic == "42"
    assert thread is not None and (thread.head.topic, [row.seq for row in thread.rows]) == ("7", [seven])
