"""Each chat's oldest pending outbound row: what keeps a chat's replies in order while one of them backs off."""

from __future__ import annotations

import datetime as dt

from kanmon.store import NewMessage, Store


def out(store: Store, chat: str, text: str) -> int:
    return store.put_message(NewMessage(chat_jid=chat, content=text, direction="out")).message.seq


def test_the_oldest_pending_row_of_each_chat_due_or_backing_off(store: Store) -> None:
    first = out(store, "telegram:1", "one")
    second = out(store, "telegram:1", "two")
    other = out(store, "telegram:2", "elsewhere")
    sent = out(store, "telegram:3", "gone")
    store.put_message(NewMessage(chat_jid="telegram:4", content="inbound rows do not count"))
    store.mark_delivery(sent, "sent")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    store.mark_delivery(first, "pending", error="503", deliver_after=later)  # backing off: not due, still the head

    jids = ["telegram:1", "telegram:2", "telegram:3", "telegram:4", "telegram:5"]
    assert store.oldest_pending_deliveries(jids) == {"telegram:1": first, "telegram:2": other}
    assert [row.seq for row in store.pending_deliveries(["telegram:"], now=dt.datetime.now(dt.UTC))] == [second, other]

    store.mark_delivery(first, "failed", error="gave up")
    assert store.oldest_pending_deliveries(jids) == {"telegram:1": second, "telegram:2": other}
    assert store.oldest_pending_deliveries([]) == {}
