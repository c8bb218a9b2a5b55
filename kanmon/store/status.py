"""What ``gated status`` reads: runs in flight, and the rows waiting for an agent outside any running batch.

``gated status`` is another process than ``gated run``, so all it can know is in the store. A run in flight is a
``session_log`` row still ``starting`` or ``running``, whichever gated wrote it; the rows of its batch are the
waiting rows of its chat routed to its folder and topic with a seq between its ``first_seq`` and ``last_seq`` (as
:meth:`~kanmon.store.work.WorkStore.run_rows` reads them). Those rows are running; every other inbound row still
``new`` is waiting, whether the loop has routed it yet or not. Whether the impulse gate holds a chat's waiting rows
is the gateway's to work out from :meth:`StatusStore.waiting_rows` (``kanmon.gateway.held``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, exists, func, select

from kanmon.store.base import StoreBase, from_rows
from kanmon.store.records import IN_FLIGHT, Run
from kanmon.store.tables import messages, session_log

__all__ = ["StatusStore", "WaitingChat", "WaitingRow"]


@dataclass(frozen=True, slots=True)
class WaitingChat:
    """A chat with inbound rows waiting for an agent outside any running batch (``unrouted``: not read by the loop
    yet, so not routed either)."""

    chat_jid: str
    waiting: int
    oldest_seq: int
    unrouted: int


@dataclass(frozen=True, slots=True)
class WaitingRow:
    """A routed waiting row, as the impulse gate weighs it: its chat, sender and verb, and when it arrived."""

    seq: int
    chat_jid: str
    sender: str
    verb: str
    received_at: dt.datetime


def _waiting() -> ColumnElement[bool]:
    """Inbound rows still ``new`` that no run in flight has taken."""
    in_a_running_batch = exists().where(
        session_log.c.status.in_(IN_FLIGHT),
        session_log.c.chat_jid == messages.c.chat_jid,
        session_log.c.group_folder == messages.c.routed_folder,
        session_log.c.topic == func.coalesce(messages.c.routed_topic, ""),
        messages.c.seq.between(session_log.c.first_seq, session_log.c.last_seq),
    )
    return and_(messages.c.direction == "in", messages.c.status == "new", ~in_a_running_batch)


class StatusStore(StoreBase):
    """The read-only queries behind ``gated status``."""

    def active_runs(self) -> list[Run]:
        """Every run in flight (``starting`` or ``running``), of whichever gated instance, oldest first."""
        query = (
            select(session_log)
            .where(session_log.c.status.in_(IN_FLIGHT))
            .order_by(session_log.c.started_at, session_log.c.id)
        )
        with self._read() as conn:
            return from_rows(Run, conn.execute(query))

    def waiting_chats(self) -> list[WaitingChat]:
        """Every chat with rows waiting outside a running batch, the one waiting longest (lowest seq) first."""
        oldest = func.min(messages.c.seq)
        unrouted = func.sum(case((messages.c.routed_folder.is_(None), 1), else_=0))
        query = (
            select(messages.c.chat_jid, func.count(), oldest, unrouted)
            .where(_waiting())
            .group_by(messages.c.chat_jid)
            .order_by(oldest)
        )
        with self._read() as conn:
            return [
                WaitingChat(str(jid), int(count), int(first), int(not_routed or 0))
                for jid, count, first, not_routed in conn.execute(query)
            ]

    def waiting_rows(self, per_chat: int = 1000) -> list[WaitingRow]:
        """The routed waiting rows outside running batches, at most ``per_chat`` of each chat (its oldest), by chat
        (the chat waiting longest first) and seq."""
        position = func.row_number().over(partition_by=messages.c.chat_jid, order_by=messages.c.seq).label("position")
        ranked = (
            select(
                messages.c.seq,
                messages.c.chat_jid,
                messages.c.sender,
                messages.c.verb,
                messages.c.received_at,
                position,
                func.min(messages.c.seq).over(partition_by=messages.c.chat_jid).label("chat_first"),
            )
            .where(_waiting(), messages.c.routed_folder.is_not(None))
            .subquery()
        )
        query = (
            select(ranked.c.seq, ranked.c.chat_jid, ranked.c.sender, ranked.c.verb, ranked.c.received_at)
            .where(ranked.c.position <= per_chat)
            .order_by(ranked.c.chat_first, ranked.c.seq)
        )
        with self._read() as conn:
            return from_rows(WaitingRow, conn.execute(query))

    def chat_count(self) -> int:
        """How many chats messages came from (distinct JIDs of inbound rows).

        The ``chats`` table is no list of chats: it has a row only where there is per-chat state to keep (an agent
        cursor, a sticky group or topic, an adapter of record), and a daemon's outbox is no chat.
        """
        query = select(func.count(func.distinct(messages.c.chat_jid))).where(messages.c.direction == "in")
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())
