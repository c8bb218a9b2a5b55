"""The message log: appending (through :mod:`kanmon.store.appends`, which keeps appends in seq order), reading in
seq order, and per-chat state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, union, update

from kanmon.errors import InvalidInput
from kanmon.store.appends import append_values, insert_values, lock_appends, message_by_id
from kanmon.store.base import EPOCH_KEY, KEY_PREFIX_KEY, SERVED_URL_KEY, StoreBase, from_row, from_rows
from kanmon.store.errors import StoreFenced
from kanmon.store.records import Chat, Message, NewMessage, PutResult
from kanmon.store.tables import chats, messages, router_state, topic_names
from kanmon.store.text import starts_with

__all__ = ["ChatTopic", "MessageStore"]

INBOUND_STATUSES = frozenset({"new", "done", "dead", "skipped"})


@dataclass(frozen=True, slots=True)
class ChatTopic:
    """One topic of a chat (a web conversation): its last message's seq and time, how many messages it has, and the
    name it was given ("": none; a named topic without messages has ``last_seq`` 0 and ``last_at`` when named)."""

    topic: str
    last_seq: int
    last_at: dt.datetime
    messages: int
    name: str = ""


class MessageStore(StoreBase):
    """Messages, chats and router_state."""

    # ------------------------------------------------------------------------------------------------ messages
    def put_message(self, new: NewMessage, *, now: dt.datetime | None = None, fenced: bool = False) -> PutResult:
        """Append ``new``; if ``(chat_jid, id)`` exists, return that row unchanged and create nothing.

        ``now`` stamps ``received_at`` (and ``timestamp`` when the message has none): gated passes its clock's time,
        other callers may leave it to the wall clock. ``fenced``: gated's own writes fail with StoreFenced once
        another gated took the store. Text is made storable first (:mod:`kanmon.store.text`).
        """
        return self.put_messages([(new, now)], fenced=fenced)[0]

    def put_messages(
        self, puts: Sequence[tuple[NewMessage, dt.datetime | None]], *, fenced: bool = False
    ) -> list[PutResult]:
        """:meth:`put_message` for each ``(new, now)`` in turn, all in one transaction; one result per put, in order.

        A message put twice in ``puts`` is stored once: the second gets the first's row, ``created=False``. Raises
        what :meth:`put_message` raises for the first put it refuses, and then stores none of them (the gateway's
        group commit then tries each alone: :class:`kanmon.store.aio.GroupCommit`).
        """
        values = [insert_values(new, self._stamp(now)) for new, now in puts]
        with self._write(fenced=fenced) as conn:
            lock_appends(conn)
            return [append_values(conn, new, row) for (new, _), row in zip(puts, values, strict=True)]

    def get_message(self, chat_jid: str, message_id: str) -> Message | None:
        """The message ``message_id`` of ``chat_jid``, if stored."""
        with self._read() as conn:
            return message_by_id(conn, chat_jid, message_id)

    def new_messages(self, after_seq: int, limit: int = 200) -> list[Message]:
        """Up to ``limit`` messages with ``seq > after_seq``, in seq order."""
        with self._read() as conn:
            return from_rows(Message, conn.execute(_AFTER, {"b_after": after_seq, "b_limit": limit}))

    def max_seq(self) -> int:
        """The highest seq stored, 0 when empty."""
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(messages.c.seq), 0))).scalar_one())

    def pending_for_chat(self, jid: str, limit: int = 1000) -> list[Message]:
        """Inbound messages of ``jid`` past its agent cursor that still wait for an agent, in seq order."""
        cursor = select(chats.c.agent_cursor).where(chats.c.jid == jid).scalar_subquery()
        query = (
            select(messages)
            .where(messages.c.chat_jid == jid, messages.c.direction == "in", messages.c.status == "new")
            .where(messages.c.seq > func.coalesce(cursor, 0))
            .order_by(messages.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return from_rows(Message, conn.execute(query))

    def mark_messages(self, seqs: Iterable[int], status: str) -> int:
        """Set the inbound ``status`` of the given rows; returns how many changed."""
        if status not in INBOUND_STATUSES:
            raise InvalidInput(f"unknown message status {status!r}")
        seq_list = list(seqs)
        if not seq_list:
            return 0
        stmt = update(messages).where(messages.c.seq.in_(seq_list), messages.c.direction == "in")
        with self._write() as conn:
            return conn.execute(stmt.values(status=status)).rowcount

    def latest_chat_messages(self, chat_jid: str, *, topic: str | None = None, limit: int = 200) -> list[Message]:
        """The last ``limit`` messages of ``chat_jid`` (of ``topic`` when given), both directions, in seq order."""
        query = select(messages).where(messages.c.chat_jid == chat_jid)
        if topic is not None:
            query = query.where(messages.c.topic == topic)
        with self._read() as conn:
            rows = conn.execute(query.order_by(messages.c.seq.desc()).limit(limit))
            return [from_row(Message, row) for row in reversed(rows.all())]

    def chat_topics(self, chat_jid: str, limit: int = 100) -> list[ChatTopic]:
        """The topics of ``chat_jid`` with their names: those named but still without messages first (the latest
        named first), then the most recently active (by their last message's seq), at most ``limit`` of these."""
        last_seq = func.max(messages.c.seq)
        query = (
            select(
                messages.c.topic,
                last_seq.label("last_seq"),
                func.max(messages.c.timestamp).label("last_at"),
                func.count().label("messages"),
            )
            .where(messages.c.chat_jid == chat_jid)
            .group_by(messages.c.topic)
            .order_by(last_seq.desc())
            .limit(limit)
        )
        names = select(topic_names).where(topic_names.c.chat_jid == chat_jid).order_by(topic_names.c.named_at.desc())
        with self._read() as conn:
            named = {row.topic: row for row in conn.execute(names)}
            active = [
                ChatTopic(
                    topic=row.topic,
                    last_seq=int(row.last_seq),
                    last_at=row.last_at,
                    messages=int(row.messages),
                    name=named[row.topic].name if row.topic in named else "",
                )
                for row in conn.execute(query)
            ]
            # a topic past the limit is not "without messages": ask for those the page did not get
            listed = {topic.topic for topic in active}
            unlisted = [topic for topic in named if topic not in listed]
            if unlisted:
                spoken = select(messages.c.topic).where(messages.c.chat_jid == chat_jid, messages.c.topic.in_(unlisted))
                listed |= set(conn.execute(spoken.distinct()).scalars())
        fresh = [
            ChatTopic(topic=topic, last_seq=0, last_at=row.named_at, messages=0, name=row.name)
            for topic, row in named.items()
            if topic not in listed
        ]
        return fresh + active

    def chat_senders(self, jids: Iterable[str], limit: int = 1000) -> list[str]:
        """The distinct ids of the people who wrote in the chats ``jids`` or were quoted there (inbound rows'
        ``sender`` and ``reply_to_sender``), at most ``limit`` (PII redaction: :mod:`kanmon.gateway.privacy`)."""
        chats_ = list(dict.fromkeys(jids))
        if not chats_:
            return []
        inbound = (messages.c.chat_jid.in_(chats_), messages.c.direction == "in")
        quoted = select(messages.c.reply_to_sender.label("id")).where(*inbound, messages.c.reply_to_sender.is_not(None))
        query = union(select(messages.c.sender.label("id")).where(*inbound), quoted).limit(limit)
        with self._read() as conn:
            return sorted(row.id for row in conn.execute(query) if row.id)

    # ------------------------------------------------------------------------------------------------ chats
    def get_chat(self, jid: str) -> Chat | None:
        """The chat ``jid``, if known."""
        with self._read() as conn:
            row = conn.execute(select(chats).where(chats.c.jid == jid)).first()
            return None if row is None else from_row(Chat, row)

    def ensure_chat(self, jid: str, **fields: Any) -> Chat:
        """Create the chat ``jid`` if missing, setting ``fields`` when given; return it."""
        with self._write() as conn:
            conn.execute(self._upsert(chats, {"jid": jid, **fields}, ["jid"]))
            return from_row(Chat, conn.execute(select(chats).where(chats.c.jid == jid)).one())

    def agent_cursor(self, jid: str) -> int:
        """The last seq the agent of ``jid`` has consumed (0 for an unknown chat)."""
        chat = self.get_chat(jid)
        return 0 if chat is None else chat.agent_cursor

    def set_agent_cursor(self, jid: str, seq: int) -> None:
        """Move the agent cursor of ``jid`` to ``seq`` (creating the chat row if needed)."""
        with self._write() as conn:
            conn.execute(self._upsert(chats, {"jid": jid, "agent_cursor": seq}, ["jid"]))

    # ------------------------------------------------------------------------------------------------ router_state
    def get_state(self, key: str, default: str | None = None) -> str | None:
        """A router_state value, or ``default``."""
        with self._read() as conn:
            value = conn.execute(select(router_state.c.value).where(router_state.c.key == key)).scalar()
            return default if value is None else str(value)

    def set_state(self, key: str, value: str) -> None:
        """Set a router_state value."""
        with self._write() as conn:
            conn.execute(self._upsert(router_state, {"key": key, "value": value}, ["key"]))

    def idempotency_prefix(self, proposed: str) -> str:
        """The prefix of this store's idempotency keys (``<prefix>-<seq>-…``, SPEC §11): ``proposed`` (the asking
        gated's instance name) if none is recorded yet, else the one recorded. Every gated that takes the store over (a
        standby with an ``--instance`` of its own, a restore on another machine) then sends a reply again under the
        key the receiver saw, whose receiver can drop it."""
        self.swap_state(KEY_PREFIX_KEY, None, proposed)
        return self.get_state(KEY_PREFIX_KEY) or proposed

    def set_served_url(self, url: str) -> None:
        """Record ``url``, where this store's gated serves HTTP as a browser on its machine reaches it (``''`` once it
        stops), for commands of other processes to print links with. Fenced: a gated that lost the store cannot
        overwrite the address of the one that holds it now."""
        with self._write(fenced=True) as conn:
            conn.execute(self._upsert(router_state, {"key": SERVED_URL_KEY, "value": url}, ["key"]))

    def served_url(self) -> str | None:
        """The address :meth:`set_served_url` recorded; None when no gated serves HTTP on this store (or said so).

        A gated killed without its cleanup leaves its address until the next one starts: the address it served on.
        """
        return self.get_state(SERVED_URL_KEY) or None

    def swap_state(self, key: str, expected: str | None, value: str) -> bool:
        """Set ``key`` to ``value`` only if it holds ``expected`` now (``None``: only if absent); True if it did.

        A compare-and-set, so two writers (gated's loop and a ``gated`` command) cannot overwrite each other.
        """
        with self._write() as conn:
            if expected is None:
                insert = self._insert(router_state).values(key=key, value=value)
                inserted = insert.on_conflict_do_nothing(index_elements=["key"]).returning(router_state.c.key)
                return conn.execute(inserted).first() is not None
            stmt = update(router_state).where(router_state.c.key == key, router_state.c.value == expected)
            return bool(conn.execute(stmt.values(value=value)).rowcount)

    def take_epoch(self, previous: int | None = None) -> int:
        """Fence this store's writes with a lock epoch of this gated's own; returns it.

        Called by the holder of the store lock right after taking it (:mod:`kanmon.store.lock`): the epoch is bumped,
        so every write of an earlier holder fails from now on. ``previous`` is the epoch this gated held before it
        lost the lock: if the epoch is still that one, nobody took the store meanwhile and it is kept (the writes
        this gated has in flight stay valid); if it moved on, :class:`StoreFenced` is raised instead, because that
        other gated may have reclaimed this one's runs.
        """
        with self._write() as conn:
            query = select(router_state.c.value).where(router_state.c.key == EPOCH_KEY)
            current = int(conn.execute(query).scalar() or 0)
            if previous is not None:
                if current != previous:
                    raise StoreFenced(f"another gated held the store meanwhile (lock epoch {current}, ours {previous})")
                self.fence = previous
                return previous
            conn.execute(self._upsert(router_state, {"key": EPOCH_KEY, "value": str(current + 1)}, ["key"]))
        self.fence = current + 1
        return current + 1

    def states(self, prefix: str) -> dict[str, str]:
        """Every router_state value whose key starts with ``prefix`` (taken literally), by key, in key order."""
        query = (
            select(router_state.c.key, router_state.c.value)
            .where(starts_with(router_state.c.key, prefix))
            .order_by(router_state.c.key)
        )
        with self._read() as conn:
            return {str(key): str(value) for key, value in conn.execute(query)}


# the poll's statement, built once
_AFTER = (
    select(messages)
    .where(messages.c.seq > bindparam("b_after"))
    .order_by(messages.c.seq)
    .limit(bindparam("b_limit", type_=Integer))
)
