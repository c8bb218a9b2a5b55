"""What waits for an agent: streams of routed rows (a chat, topic and origin per folder) and their next batches.

Connection-level functions, shared by the store's reads and by the transaction that begins a run, so a run takes
exactly the batch it saw (:mod:`kanmon.store.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Integer, bindparam, func, select

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


# Built once and executed with parameters: every run begins with these two, and building a statement costs more
# than SQLite takes to run it (the issue 13 profile).
_KEY = (messages.c.routed_folder, messages.c.chat_jid, messages.c.routed_topic, messages.c.forwarded_from)
_HEADS = (
    select(*_KEY, func.min(messages.c.seq), func.count())
    .where(messages.c.status == "new", messages.c.routed_folder.is_not(None))
    .group_by(*_KEY)
    .order_by(func.min(messages.c.seq))
)
_FOLDER_HEADS = _HEADS.where(messages.c.routed_folder == bindparam("folder"))
_BATCH = (
    select(messages)
    .where(
        messages.c.status == "new",
        messages.c.routed_folder == bindparam("folder"),
        messages.c.chat_jid == bindparam("chat_jid"),
        messages.c.seq >= bindparam("first_seq"),
    )
    .order_by(messages.c.seq)
    .limit(bindparam("limit", type_=Integer))
)


def lane_heads(conn: Connection, folder: str | None = None) -> list[LaneHead]:
    """Every stream of rows waiting for an agent (of ``folder`` only, when given), oldest first."""
    rows = conn.execute(_HEADS) if folder is None else conn.execute(_FOLDER_HEADS, {"folder": folder})
    return [
        LaneHead(str(f), str(jid), str(topic or ""), origin, int(first), int(n))
        for f, jid, topic, origin, first, n in rows
    ]


def lane_batch(conn: Connection, head: LaneHead, limit: int = 100) -> list[Message]:
    """The next batch of ``head``'s stream: its waiting rows from the oldest, in seq order, at most ``limit``.

    The batch stops at the first row of the same chat and folder in another topic or from another origin, so a batch
    is always one session's consecutive messages and the cursor can move past all of it.
    """
    params = {"folder": head.folder, "chat_jid": head.chat_jid, "first_seq": head.first_seq, "limit": limit}
    batch: list[Message] = []
    for row in conn.execute(_BATCH, params):
        message = from_row(Message, row)
        if (message.routed_topic or "") != head.topic or message.forwarded_from != head.forwarded_from:
            break
        batch.append(message)
    return batch
