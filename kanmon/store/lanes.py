"""What waits for an agent: streams of routed rows (a chat, topic and origin per folder) and their next batches.

Connection-level functions, shared by the store's reads and by the transaction that begins a run, so a run takes
exactly the batch it saw (:mod:`kanmon.store.runs`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, literal_column, select, union_all

from kanmon.store.base import from_row
from kanmon.store.lists import in_list
from kanmon.store.records import IN_FLIGHT, Message
from kanmon.store.tables import messages, session_log

__all__ = ["LaneHead", "lane_batch", "lane_batches", "lane_heads", "lane_heads_of"]


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
_FOLDERS_HEADS = _HEADS.where(in_list(messages.c.routed_folder, "folders"))


def _batch_of(suffix: str = "") -> Any:
    """A stream's next rows, its parameters named ``folder``, ``chat_jid``, ``first_seq`` and ``limit`` + suffix."""
    return (
        select(messages)
        .where(
            messages.c.status == "new",
            messages.c.routed_folder == bindparam(f"folder{suffix}"),
            messages.c.chat_jid == bindparam(f"chat_jid{suffix}"),
            messages.c.seq >= bindparam(f"first_seq{suffix}"),
        )
        .order_by(messages.c.seq)
        .limit(bindparam(f"limit{suffix}", type_=Integer))
    )


_BATCH = _batch_of()


@functools.cache
def _batches(count: int) -> Any:
    """The next rows of ``count`` streams in one statement (parameters suffixed ``_0`` …), each row led by its
    stream's index: a ``UNION ALL`` of :data:`_BATCH`, built once per count."""
    parts = [_batch_of(f"_{n}").subquery() for n in range(count)]
    return union_all(*(select(literal_column(str(n)).label("stream"), *part.c) for n, part in enumerate(parts)))


def lane_heads(conn: Connection, folder: str | None = None) -> list[LaneHead]:
    """Every stream of rows waiting for an agent (of ``folder`` only, when given), oldest first."""
    return _heads(conn.execute(_HEADS) if folder is None else conn.execute(_FOLDER_HEADS, {"folder": folder}))


def _heads(rows: Any) -> list[LaneHead]:
    return [
        LaneHead(str(f), str(jid), str(topic or ""), origin, int(first), int(n))
        for f, jid, topic, origin, first, n in rows
    ]


def lane_heads_of(conn: Connection, folders: Sequence[str]) -> dict[str, list[LaneHead]]:
    """:func:`lane_heads` of each of ``folders`` in one read: every folder's streams, oldest first (none: [])."""
    heads: dict[str, list[LaneHead]] = {folder: [] for folder in folders}
    if folders:
        for head in _heads(conn.execute(_FOLDERS_HEADS, {"folders": list(heads)})):
            heads[head.folder].append(head)
    return heads


def lane_batch(conn: Connection, head: LaneHead, limit: int = 100) -> list[Message]:
    """The next batch of ``head``'s stream: its waiting rows from the oldest, in seq order, at most ``limit``.

    The batch stops at the first row of the same chat and folder in another topic or from another origin, so a batch
    is always one session's consecutive messages and the cursor can move past all of it.
    """
    params = {"folder": head.folder, "chat_jid": head.chat_jid, "first_seq": head.first_seq, "limit": limit}
    return _stream(head, (from_row(Message, row) for row in conn.execute(_BATCH, params)))


def lane_batches(conn: Connection, heads: Sequence[tuple[LaneHead, int]]) -> list[list[Message]]:
    """:func:`lane_batch` of each ``(head, limit)`` in one read (several runs beginning together)."""
    if not heads:
        return []
    params: dict[str, Any] = {}
    for n, (head, limit) in enumerate(heads):
        values = {"folder": head.folder, "chat_jid": head.chat_jid, "first_seq": head.first_seq, "limit": limit}
        params.update({f"{name}_{n}": value for name, value in values.items()})
    rows: list[list[Message]] = [[] for _ in heads]
    for row in conn.execute(_batches(len(heads)), params):
        rows[int(row.stream)].append(from_row(Message, row))
    return [_stream(head, sorted(batch, key=lambda m: m.seq)) for (head, _), batch in zip(heads, rows, strict=True)]


def _stream(head: LaneHead, rows: Iterable[Message]) -> list[Message]:
    """``rows`` (in seq order) up to the first of another topic or origin than ``head``'s stream."""
    batch: list[Message] = []
    for message in rows:
        if (message.routed_topic or "") != head.topic or message.forwarded_from != head.forwarded_from:
            break
        batch.append(message)
    return batch


def sessions_in_flight(conn: Connection, folders: Sequence[str]) -> set[tuple[str, str]]:
    """The sessions ``(folder, topic)`` of ``folders`` that a run in flight holds (of any gated), in one read: no other
    run begins on one (:mod:`kanmon.store.run_begins`), no memory flush turn starts on one
    (:meth:`~kanmon.store.resets.ResetStore.claim_flush`)."""
    rows = conn.execute(_IN_FLIGHT, {"b_in_flight": list(IN_FLIGHT), "b_folders": list(folders)})
    return {(str(folder), str(topic)) for folder, topic in rows}


_IN_FLIGHT = select(session_log.c.group_folder, session_log.c.topic).where(
    in_list(session_log.c.status, "b_in_flight"), in_list(session_log.c.group_folder, "b_folders")
)
