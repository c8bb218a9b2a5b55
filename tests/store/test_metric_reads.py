"""The two reads behind the metrics (issue 18 item 5): pending replies per chat (the delivery backlog, on scrape) and
the busiest folders (the first ``folder`` labels, at start)."""

from __future__ import annotations

import datetime as dt

from kanmon.store import Group, NewMessage, Run, Store


def out(store: Store, chat: str) -> int:
    return store.put_message(NewMessage(chat_jid=chat, content="reply", direction="out")).message.seq


def run(store: Store, run_id: str, folder: str) -> None:
    store.start_run(
        Run(
            id=run_id, instance="test", group_folder=folder, topic="", chat_jid=f"web:{folder}", runtime="process",
            status="running", started_at=dt.datetime.now(dt.UTC),
        )
    )  # fmt: skip


def test_pending_replies_are_counted_per_chat_due_or_backing_off(store: Store) -> None:
    first, _, sent = out(store, "telegram:1"), out(store, "telegram:1"), out(store, "telegram:2")
    out(store, "web:corp")
    store.put_message(NewMessage(chat_jid="telegram:3", content="inbound rows do not count"))
    store.mark_delivery(sent, "sent")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    store.mark_delivery(first, "pending", error="503", deliver_after=later)
    assert store.pending_by_chat() == {"telegram:1": 2, "web:corp": 1}


def test_the_busiest_folders_come_first_and_ties_by_name(store: Store) -> None:
    for folder in ("quiet", "busy", "also"):
        store.add_group(Group(folder=folder))
    for index, folder in enumerate(["busy", "busy", "busy", "also", "quiet"]):
        run(store, f"r{index}", folder)
    assert store.busiest_folders(2) == ["busy", "also"]
    assert store.busiest_folders(10) == ["busy", "also", "quiet"]
