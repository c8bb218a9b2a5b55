"""What waits for an agent: streams of routed rows (a chat, topic and origin per folder) and their next batches.

Connection-level functions, shared by the store's reads and by the transaction that begins a run, so a run takes
exactly the batch it saw (:mod:`kanmon.store.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from kanmon.store.base import from_row
from kanmon.store.records import Message
from kanmon.store.tables import messages

__all__ = ["LaneHead", "lane_batch", "lane_heads"]


@dataclass(frozen=True, slots=True)
class LaneHead:
    """The oldest waiting row of one (folder, chat, topic, origin) stream: where the next batch of it starts."""

    folder: str
    chat_jid: str
    topic: str
    forwarded_from: str | None
    first_seq: int
    count: int


def lane_heads(conn: Connection, folder: str | None = None) -> list[LaneHead]:
    """Every stream of rows waiting for an agent (of ``folder`` only, when given), oldest first."""
    key = (messages.c.routed_folder, messages.c.chat_jid, messages.c.routed_topic, messages.c.forwarded_from)
    query = (
        select(*key, func.min(messages.c.seq), func.count())
        .where(messages.c.status == "new", messages.c.routed_folder.is_not(None))
        .group_by(*key)
        .order_by(func.min(messages.c.seq))
    )
    if folder is not None:
        query = query.where(messages.c.routed_folder == folder)
    return [
        LaneHead(str(f), str(jid), str(topic or ""), origin, int(first), int(n))
        for f, jid, topic, origin, first, n in conn.execute(query)
    ]


def lane_batch(conn: Connection, head: LaneHead, limit: int = 100) -> list[Message]:
    """The next batch of ``head``'s stream: its waiting rows from the oldest, in seq order, at most ``limit``.

    The batch stops at the first row of the same chat and folder in another topic or from another origin, so a batch
    is always one session's consecutive messages and the cursor can move past all of it.
    """
    query = (
        select(messages)
        .where(
            messages.c.status == "new",
            messages.c.routed_folder == head.folder,
            messages.c.chat_jid == head.chat_jid,
            messages.c.seq >= head.first_seq,
        )
        .order_by(messages.c.seq)
        .limit(limit)
    )
    batch: list[Message] = []
    for row in conn.execute(query):
        message = from_row(Message, row)
        if (message.routed_topic or "") != head.topic or message.forwarded_from != head.forwarded_from:
            break
        batch.append(message)
    return batch
