"""A chat's outbox: its pending outbound rows in seq order, due or backing off, which is what keeps a chat's replies
in order while one of them backs off (its deliverer sends from the head while rows are due)."""

from __future__ import annotations

import datetime as dt

from kanmon.store import NewMessage, Store


def out(store: Store, chat: str, text: str) -> int:
    return store.put_message(NewMessage(chat_jid=chat, content=text, direction="out")).message.seq


def test_a_chats_outbox_is_its_pending_rows_oldest_first_backing_off_or_not(store: Store) -> None:
    first = out(store, "telegram:1", "one")
    sent = out(store, "telegram:1", "gone")
    second = out(store, "telegram:1", "two")
    out(store, "telegram:10", "another chat whose JID begins with this one's")
    store.put_message(NewMessage(chat_jid="telegram:1", content="inbound rows do not count"))
    store.mark_delivery(sent, "sent")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    store.mark_delivery(first, "pending", error="503", deliver_after=later)  # backing off: not due, still the head

    outbox = store.chat_outbox("telegram:1")
    assert [row.seq for row in outbox] == [first, second]
    assert outbox[0].deliver_after == later and outbox[1].deliver_after is None
    assert [row.seq for row in store.chat_outbox("telegram:1", limit=1)] == [first]
    assert [row.seq for row in store.pending_deliveries(["telegram:1"], now=dt.datetime.now(dt.UTC), exact=True)] == [
        second
    ]

    store.mark_delivery(first, "failed", error="gave up")
    assert [row.seq for row in store.chat_outbox("telegram:1")] == [second]
    assert store.chat_outbox("telegram:2") == []


def test_due_chats_are_the_chats_with_a_due_row_oldest_due_row_first(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    busy = [out(store, "telegram:busy", f"reply {n}") for n in range(5)]
    out(store, "telegram:quiet", "one")
    waiting = out(store, "telegram:waiting", "backing off")
    out(store, "telegramx:other", "another channel's")
    out(store, "daemon:hook-2", "a daemon whose name begins another's")
    out(store, "daemon:hook", "a daemon's")
    store.mark_delivery(waiting, "pending", error="503", deliver_after=now + dt.timedelta(hours=1))
    store.mark_delivery(busy[0], "sent")

    assert store.due_chats(["telegram:"], now=now) == ["telegram:busy", "telegram:quiet"]
    assert store.due_chats(["telegram:"], now=now, limit=1) == ["telegram:busy"]  # one chat, however many rows
    assert store.due_chats(["telegram:"], now=now + dt.timedelta(hours=2)) == [
        "telegram:busy",
        "telegram:quiet",
        "telegram:waiting",
    ]
    assert store.due_chats(["daemon:hook"], now=now, exact=True) == ["daemon:hook"]
    assert store.due_chats(["daemon:hook"], now=now) == ["daemon:hook-2", "daemon:hook"]
    assert store.due_chats([], now=now) == []


def test_a_chat_whose_oldest_pending_row_backs_off_is_not_due_though_rows_behind_it_are(store: Store) -> None:
    """Its deliverer would send nothing (the head holds back the rows behind it, SPEC §11), so counting it would only
    take one of the ``limit`` places from a chat that can be sent to."""
    now = dt.datetime.now(dt.UTC)
    head = out(store, "telegram:stuck", "backing off")
    out(store, "telegram:stuck", "queued behind it")
    out(store, "telegram:free", "due")
    store.mark_delivery(head, "pending", error="503", deliver_after=now + dt.timedelta(hours=1))

    assert store.due_chats(["telegram:"], now=now) == ["telegram:free"]
    assert store.due_chats(["telegram:"], now=now, limit=1) == ["telegram:free"]
    assert store.due_chats(["telegram:stuck"], now=now, exact=True) == []
    assert store.due_chats(["telegram:"], now=now + dt.timedelta(hours=2)) == ["telegram:stuck", "telegram:free"]
    store.mark_delivery(head, "failed", error="gave up")
    assert store.due_chats(["telegram:"], now=now) == ["telegram:stuck", "telegram:free"]


def test_a_prefix_matches_chats_case_sensitively_on_every_backend(store: Store) -> None:
    """JIDs are case-sensitive (``discord:Guild1:`` and ``discord:guild1:`` are two adapters' prefixes), but SQLite's
    LIKE ignores ASCII case: there, one adapter's pass took the other's chats (an outside review)."""
    now = dt.datetime.now(dt.UTC)
    out(store, "discord:guild1:chan", "the lower-case adapter's")
    upper = out(store, "discord:Guild1:chan", "the upper-case adapter's")
    assert store.due_chats(["discord:Guild1:"], now=now) == ["discord:Guild1:chan"]
    assert [row.seq for row in store.pending_deliveries(["discord:Guild1:"], now=now)] == [upper]
    assert store.due_chats(["DISCORD:"], now=now) == []
    store.set_state("Kanmon.x", "1")
    assert store.states("kanmon.") == {}
