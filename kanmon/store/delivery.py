"""The outbox's reads and marks (SPEC §11): outbound rows ``pending`` until a deliverer says what became of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select, update

from kanmon.store.base import StoreBase, from_rows
from kanmon.store.lists import in_list
from kanmon.store.records import Message
from kanmon.store.tables import messages
from kanmon.store.text import starts_with, storable

__all__ = ["DeliveryStore"]


class DeliveryStore(StoreBase):
    """Pending outbound rows and their delivery attempts."""

    def pending_deliveries(
        self, prefixes: Sequence[str], *, now: dt.datetime, limit: int = 100, exact: bool = False
    ) -> list[Message]:
        """Outbound rows still to send to chats whose JID starts with one of ``prefixes`` (with ``exact``: is one of
        them), due at ``now``, in seq order."""
        if not prefixes:
            return []
        query = select(messages).where(*_due(prefixes, now, exact)).order_by(messages.c.seq).limit(limit)
        with self._read() as conn:
            return from_rows(Message, conn.execute(query))

    def due_chats(
        self, prefixes: Sequence[str], *, now: dt.datetime, limit: int = 100, exact: bool = False
    ) -> list[str]:
        """The chats (JIDs, matched as by :meth:`pending_deliveries`) whose oldest pending outbound row is due at
        ``now``, the one whose row is oldest first: what a channel's deliverer looks at, one place per chat, so that
        a chat with many rows queued does not fill the ``limit`` and hide the others. A chat whose oldest row backs
        off is left out, however many rows wait behind it: its deliverer would send none of them (SPEC §11 order),
        and a pass of such chats would hide a chat that can be sent to."""
        if not prefixes:
            return []
        earlier = messages.alias("earlier")
        held_back = (
            select(earlier.c.seq)
            .where(
                earlier.c.chat_jid == messages.c.chat_jid,
                earlier.c.delivery_status == "pending",
                earlier.c.seq < messages.c.seq,
                earlier.c.deliver_after > now,  # backing off (NULL: due)
            )
            .exists()
        )
        query = (
            select(messages.c.chat_jid)
            .where(*_due(prefixes, now, exact), ~held_back)
            .group_by(messages.c.chat_jid)
            .order_by(func.min(messages.c.seq))
            .limit(limit)
        )
        with self._read() as conn:
            return [str(jid) for jid in conn.execute(query).scalars()]

    def pending_by_chat(self) -> dict[str, int]:
        """Outbound rows still ``pending`` (due or backing off), counted by chat JID: one grouped read on the
        ``(delivery_status, seq)`` index, for the delivery-backlog gauge."""
        query = (
            select(messages.c.chat_jid, func.count())
            .where(messages.c.delivery_status == "pending")
            .group_by(messages.c.chat_jid)
        )
        with self._read() as conn:
            return {str(jid): int(rows) for jid, rows in conn.execute(query)}

    def chat_outbox(self, jid: str, *, limit: int = 100) -> list[Message]:
        """Chat ``jid``'s outbound rows still ``pending``, due or backing off, oldest first (at most ``limit``).

        Its deliverer sends from the head while rows are due: a head backing off holds back the rows behind it, so
        a chat's replies never overtake one another (SPEC §11).
        """
        query = (
            select(messages)
            .where(messages.c.chat_jid == jid, messages.c.direction == "out", messages.c.delivery_status == "pending")
            .order_by(messages.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return from_rows(Message, conn.execute(query))

    def mark_delivery(
        self,
        seq: int,
        status: Literal["pending", "sent", "failed"],
        *,
        error: str | None = None,
        deliver_after: dt.datetime | None = None,
        platform_message_id: str | None = None,
    ) -> bool:
        """Record one delivery attempt of outbound row ``seq``; False when it was no longer pending."""
        values: dict[str, Any] = {
            "delivery_status": status,
            "delivery_attempts": messages.c.delivery_attempts + 1,
            "delivery_error": None if error is None else storable(error),
            "deliver_after": deliver_after,
        }
        if platform_message_id is not None:
            values["platform_message_id"] = storable(platform_message_id)
        stmt = update(messages).where(
            messages.c.seq == seq, messages.c.direction == "out", messages.c.delivery_status == "pending"
        )
        with self._write(fenced=True) as conn:
            return bool(conn.execute(stmt.values(**values)).rowcount)

    def mark_sent(self, seqs: Sequence[int]) -> int:
        """Mark many pending outbound rows ``sent`` in one statement (channels whose readers read the store)."""
        if not seqs:
            return 0
        with self._write(fenced=True) as conn:
            return int(conn.execute(_MARK_SENT, {"b_seqs": list(seqs)}).rowcount)


_MARK_SENT = (
    update(messages)
    .where(in_list(messages.c.seq, "b_seqs"), messages.c.direction == "out", messages.c.delivery_status == "pending")
    .values(delivery_status="sent", delivery_attempts=messages.c.delivery_attempts + 1)
)


def _due(prefixes: Sequence[str], now: dt.datetime, exact: bool) -> tuple[ColumnElement[bool], ...]:
    """Outbound rows pending and due at ``now``, of chats whose JID starts with (``exact``: is) one of ``prefixes``."""
    chats_matching: ColumnElement[bool]
    if exact:
        chats_matching = messages.c.chat_jid.in_(list(prefixes))
    else:
        chats_matching = or_(*(starts_with(messages.c.chat_jid, prefix) for prefix in prefixes))
    due = or_(messages.c.deliver_after.is_(None), messages.c.deliver_after <= now)
    return messages.c.delivery_status == "pending", chats_matching, due
