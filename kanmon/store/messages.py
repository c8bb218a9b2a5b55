"""The message log: the sole appender, the seq cursor, and per-chat state.

Appends must become visible in seq order, or a reader following ``seq > cursor`` would skip a row forever.
SQLite serialises writers by itself (``BEGIN IMMEDIATE``). A PostgreSQL sequence hands out numbers before commit,
so appends take a transaction-scoped advisory lock first: the next append cannot draw a number until this one has
committed.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, select, text, union, update

from kanmon.errors import InvalidInput
from kanmon.store.base import EPOCH_KEY, StoreBase, from_row, from_rows
from kanmon.store.errors import StoreFenced
from kanmon.store.records import Chat, Message, NewMessage, PutResult
from kanmon.store.tables import chats, messages, router_state, topic_names
from kanmon.store.text import storable, storable_json

__all__ = ["ChatTopic", "MessageStore", "append_message", "lock_appends"]

# pg_advisory_xact_lock key for appends to messages: any fixed 64-bit number, spelled so a DBA can recognise it.
APPEND_LOCK_KEY = 0x6B616E6D6F6E  # "kanmon"
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
        values = insert_values(new, self._stamp(now))
        with self._write(fenced=fenced) as conn:
            lock_appends(conn)
            return _append_values(conn, new, values)

    def get_message(self, chat_jid: str, message_id: str) -> Message | None:
        """The message ``message_id`` of ``chat_jid``, if stored."""
        with self._read() as conn:
            return _message_by_id(conn, chat_jid, message_id)

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
            .where(router_state.c.key.startswith(prefix, autoescape=True))
            .order_by(router_state.c.key)
        )
        with self._read() as conn:
            return {str(key): str(value) for key, value in conn.execute(query)}


def lock_appends(conn: Connection) -> None:
    """Take the append lock for the rest of ``conn``'s transaction (PostgreSQL; SQLite's writer lock is enough).

    Every transaction that appends to ``messages`` takes it before anything else, so appends commit in seq order.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})


def append_message(conn: Connection, new: NewMessage, now: dt.datetime) -> PutResult:
    """:meth:`MessageStore.put_message` inside a transaction of the caller's, which holds :func:`lock_appends`."""
    return _append_values(conn, new, insert_values(new, now))


def _append_values(conn: Connection, new: NewMessage, values: dict[str, Any]) -> PutResult:
    existing = _message_by_id(conn, new.chat_jid, values["id"]) or _output_by_index(conn, new)
    if existing is not None:
        return PutResult(existing, created=False)
    row = conn.execute(_INSERT_RETURNING, values).one()
    return PutResult(from_row(Message, row), created=True)


def _message_by_id(conn: Connection, chat_jid: str, message_id: str) -> Message | None:
    row = conn.execute(_BY_ID, {"b_chat": chat_jid, "b_id": message_id}).first()
    return None if row is None else from_row(Message, row)


def _output_by_index(conn: Connection, new: NewMessage) -> Message | None:
    """A run's reply recorded before (a reclaimed run replays its output): the same row, not a second one."""
    if new.run_id is None or new.output_index is None:
        return None
    row = conn.execute(_BY_OUTPUT, {"b_run": new.run_id, "b_index": new.output_index}).first()
    return None if row is None else from_row(Message, row)


def insert_new(conn: Connection, replies: Sequence[NewMessage], now: dt.datetime) -> list[Message]:
    """Insert the rows not stored yet (a run's reply by ``(run_id, output_index)``, any other by ``(chat_jid, id)``),
    many per statement, in a transaction holding :func:`lock_appends`; return the rows created, in seq order."""
    return insert_new_groups(conn, [replies], now)[0]


def insert_new_groups(
    conn: Connection, groups: Sequence[Sequence[NewMessage]], now: dt.datetime
) -> list[list[Message]]:
    """:func:`insert_new` for several lists at once (several runs' ends): one check and one INSERT for all of them;
    returns the rows each list created, in seq order."""
    replies = [reply for group in groups for reply in group]
    if not replies:
        return [[] for _ in groups]
    outputs = [(reply.run_id, reply.output_index) for reply in replies if reply.run_id is not None]
    recorded = _stored(conn, ("run_id", "output_index"), [key for key in outputs if key[1] is not None])
    ids = [(reply.chat_jid, reply.id) for reply in replies if reply.run_id is None and reply.id]
    taken = _stored(conn, ("chat_jid", "id"), ids)
    fresh: list[dict[str, Any]] = []
    owner: dict[tuple[str, str], int] = {}  # (chat_jid, id) of each fresh row: the list it came from
    for index, group in enumerate(groups):
        for reply in group:
            if (reply.run_id, reply.output_index) in recorded or (reply.chat_jid, reply.id) in taken:
                continue
            values = insert_values(reply, now)
            fresh.append(values)
            owner[(values["chat_jid"], values["id"])] = index
    created: list[list[Message]] = [[] for _ in groups]
    if not fresh:
        return created
    if conn.dialect.name == "postgresql":
        # imported here: it loads SQLAlchemy's PostgreSQL dialect, 2.4 MiB a SQLite gated never needs
        from kanmon.store.pg_append import insert_rows

        rows = insert_rows(conn, fresh)
    else:
        rows = conn.execute(_INSERT_RETURNING, fresh)
    for message in sorted(from_rows(Message, rows), key=lambda message: message.seq):
        created[owner[(message.chat_jid, message.id)]].append(message)
    return created


def _stored(conn: Connection, key: tuple[str, str], pairs: Sequence[tuple[Any, Any]]) -> set[tuple[Any, Any]]:
    """Which of ``pairs`` (values of the two columns ``key``, a unique key of messages) are stored already."""
    if not pairs:
        return set()
    if conn.dialect.name == "postgresql":
        from kanmon.store.pg_append import stored_keys  # PostgreSQL's dialect: see insert_new

        return stored_keys(conn, key, pairs)
    # SQLite answers "first IN (…) AND second IN (…)" with one index probe per combination of the two lists
    values = {"b_first": sorted({first for first, _ in pairs}), "b_second": sorted({second for _, second in pairs})}
    return {(first, second) for first, second in conn.execute(_in_both(key), values)}


@functools.cache
def _in_both(key: tuple[str, str]) -> Any:
    """insert_new's check on SQLite, built once (it runs at the end of every run): reused statement objects skip
    SQLAlchemy's construction and cache-key work, which cost more than executing them (the issue 13 profile)."""
    first, second = (messages.c[name] for name in key)
    return select(first, second).where(
        first.in_(bindparam("b_first", expanding=True)), second.in_(bindparam("b_second", expanding=True))
    )


# insert_new's statement on SQLite, and put_message's and the poll's, built once
_INSERT_RETURNING = messages.insert().returning(*messages.c)
_BY_ID = select(messages).where(messages.c.chat_jid == bindparam("b_chat"), messages.c.id == bindparam("b_id"))
_BY_OUTPUT = select(messages).where(
    messages.c.run_id == bindparam("b_run"), messages.c.output_index == bindparam("b_index")
)
_AFTER = (
    select(messages)
    .where(messages.c.seq > bindparam("b_after"))
    .order_by(messages.c.seq)
    .limit(bindparam("b_limit", type_=Integer))
)


_TEXT_FIELDS = (
    "chat_jid", "sender", "sender_name", "content", "verb", "topic", "reply_to_id", "reply_to_text",
    "reply_to_sender", "forwarded_from", "origin", "run_id", "platform_message_id",
)  # fmt: skip


def insert_values(new: NewMessage, now: dt.datetime) -> dict[str, Any]:
    """The column values of ``new`` as a new row received at ``now``: every text made storable, the same keys for
    every message (so many rows can go in one ``executemany``). Raises InvalidInput for a JID or time kanmon refuses.
    """
    if not new.chat_jid or ":" not in new.chat_jid:
        raise InvalidInput(f"invalid chat JID {new.chat_jid!r}: expected <platform>:<room>")
    if new.timestamp is not None and new.timestamp.tzinfo is None:
        raise InvalidInput("message timestamp must carry a time zone")
    values: dict[str, Any] = {key: _text(getattr(new, key)) for key in _TEXT_FIELDS}
    values["id"] = storable(new.id) if new.id else uuid.uuid4().hex
    values["direction"] = new.direction
    values["is_bot_message"] = new.is_bot_message
    values["output_index"] = new.output_index
    values["attachments"] = None if new.attachments is None else storable_json(new.attachments)
    values["timestamp"] = new.timestamp or now
    values["received_at"] = now
    values["status"] = "new" if new.direction == "in" else None
    # a reply to a chat whose readers read the store (web:, local:) is delivered by being stored
    values["delivery_status"] = None if new.direction == "in" else ("sent" if new.delivered else "pending")
    if new.direction == "out":
        # Every outbound row is kanmon speaking (a reply, a command answer, an apology, a daemon forward), so it is
        # the bot's own message whatever the writer passed. Inbound rows keep the flag their channel gave: a copy the
        # gateway posts (a delegation, an onboarding re-post) speaks for its original sender (Message.copy_as).
        values["is_bot_message"] = True
    return values


def _text(value: str | None) -> str | None:
    return None if value is None else storable(value)
