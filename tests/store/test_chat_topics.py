"""What the web chat reads besides the log by seq: a chat's topics by activity, and the tail of one topic."""

from __future__ import annotations

import datetime as dt

from kanmon.store import NewMessage, Store

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def put(store: Store, topic: str, content: str, minute: int, chat: str = "web:corp", direction: str = "in") -> int:
    new = NewMessage(
        chat_jid=chat,
        content=content,
        topic=topic,
        timestamp=T0 + dt.timedelta(minutes=minute),
        direction=direction,  # type: ignore[arg-type]
    )
    return store.put_message(new).message.seq


def test_chat_topics_lists_each_topic_once_most_recently_active_first(store: Store) -> None:
    put(store, "t-a", "a1", 0)
    put(store, "t-b", "b1", 1)
    last_a = put(store, "t-a", "a2", 2, direction="out")
    put(store, "", "plain", 3)
    last_b = put(store, "t-b", "b2", 4)
    put(store, "t-a", "other chat", 9, chat="web:other")

    topics = store.chat_topics("web:corp")

    assert [(t.topic, t.last_seq, t.messages) for t in topics] == [
        ("t-b", last_b, 2),
        ("", last_b - 1, 1),
        ("t-a", last_a, 2),
    ]
    assert [t.last_at for t in topics] == [T0 + dt.timedelta(minutes=m) for m in (4, 3, 2)]
    assert all(t.last_at.tzinfo is not None for t in topics)
    assert [t.topic for t in store.chat_topics("web:corp", limit=2)] == ["t-b", ""]
    assert store.chat_topics("web:nobody") == []


def test_latest_chat_messages_is_the_tail_of_one_topic_in_seq_order(store: Store) -> None:
    for i in range(5):
        put(store, "t-a", f"a{i}", i)
        put(store, "t-b", f"b{i}", i)

    tail = store.latest_chat_messages("web:corp", topic="t-a", limit=3)

    assert [m.content for m in tail] == ["a2", "a3", "a4"]
    assert [m.seq for m in tail] == sorted(m.seq for m in tail)
    assert len(store.latest_chat_messages("web:corp", limit=100)) == 10
    assert store.latest_chat_messages("web:corp", topic="t-c") == []
