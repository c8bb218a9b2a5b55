"""Appending to the message log: the append lock, one new row, many new rows in one statement, and the values a
new row gets.

Appends must become visible in seq order, or a reader following ``seq > cursor`` would skip a row forever.
SQLite serialises writers by itself (``BEGIN IMMEDIATE``). A PostgreSQL sequence hands out numbers before commit,
so appends take a transaction-scoped advisory lock first (:func:`lock_appends`): the next append cannot draw a
number until this one has committed.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, select, text

from kanmon.errors import InvalidInput
from kanmon.store.base import from_row, from_values
from kanmon.store.lists import in_list
from kanmon.store.records import Message, NewMessage, PutResult
from kanmon.store.tables import messages
from kanmon.store.text import storable, storable_json

__all__ = [
    "APPEND_LOCK_KEY",
    "append_message",
    "append_values",
    "as_created",
    "insert_new",
    "insert_new_groups",
    "insert_values",
    "lock_appends",
    "message_by_id",
]

# pg_advisory_xact_lock key for appends to messages: any fixed 64-bit number, spelled so a DBA can recognise it.
APPEND_LOCK_KEY = 0x6B616E6D6F6E  # "kanmon"


def lock_appends(conn: Connection) -> None:
    """Take the append lock for the rest of ``conn``'s transaction (PostgreSQL; SQLite's writer lock is enough).

    Every transaction that appends to ``messages`` takes it before anything else, so appends commit in seq order.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})


def append_message(conn: Connection, new: NewMessage, now: dt.datetime) -> PutResult:
    """:meth:`MessageStore.put_message` inside a transaction of the caller's, which holds :func:`lock_appends`."""
    return append_values(conn, new, insert_values(new, now))


def append_values(conn: Connection, new: NewMessage, values: dict[str, Any]) -> PutResult:
    existing = message_by_id(conn, new.chat_jid, values["id"]) or _output_by_index(conn, new)
    if existing is not None:
        return PutResult(existing, created=False)
    seq = conn.execute(_INSERT_SEQ, values).scalar_one()
    return PutResult(as_created(values, seq), created=True)


def message_by_id(conn: Connection, chat_jid: str, message_id: str) -> Message | None:
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

        keys: CursorResult[Any] = insert_rows(conn, fresh)
    else:
        keys = conn.execute(_INSERT_KEYS, fresh)
    seqs: dict[tuple[str, str], int] = {(row.chat_jid, row.id): row.seq for row in keys}
    for values in sorted(fresh, key=lambda values: seqs[(values["chat_jid"], values["id"])]):
        key = (values["chat_jid"], values["id"])
        created[owner[key]].append(as_created(values, seqs[key]))
    return created


def as_created(values: dict[str, Any], seq: int) -> Message:
    """The row :func:`insert_values` gave ``values`` for, stored at ``seq``, as a read of it would give it: times in
    UTC, and the columns the database fills in at their defaults.

    Built, not read back: returning every column of a new row and building the message from it was a third of
    recording a run's reply (issue 13). ``tests/store/test_reply_batches.py`` holds the two equal for any input.
    """
    times = {name: values[name].astimezone(dt.UTC) for name in ("timestamp", "received_at")}
    return from_values(Message, {**values, **times, "seq": seq, **_FILLED_IN})


# the columns of a new row insert_values leaves to the database, as it fills them in
_FILLED_IN = {
    "delivery_attempts": 0,
    "deliver_after": None,
    "delivery_error": None,
    "routed_folder": None,
    "routed_topic": None,
    "routed_content": None,
}


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
    return select(first, second).where(in_list(first, "b_first"), in_list(second, "b_second"))


# insert_new's statement on SQLite, put_message's, and the poll's, built once: a new row hands back only what the
# database decides (its seq) and the key it is found by; the rest is what was inserted (as_created)
_INSERT_KEYS = messages.insert().returning(messages.c.seq, messages.c.chat_jid, messages.c.id)
_INSERT_SEQ = messages.insert().returning(messages.c.seq)
_BY_ID = select(messages).where(messages.c.chat_jid == bindparam("b_chat"), messages.c.id == bindparam("b_id"))
_BY_OUTPUT = select(messages).where(
    messages.c.run_id == bindparam("b_run"), messages.c.output_index == bindparam("b_index")
)


_TEXT_FIELDS = (
    "chat_jid", "sender", "sender_name", "content", "verb", "topic", "reply_to_id", "reply_to_text",
    "reply_to_sender", "forwarded_from", "origin", "run_id", "platform_message_id",
)  # fmt: skip


def insert_values(new: NewMessage, now: dt.datetime) -> dict[str, Any]:
    """The column values of ``new`` as a new row received at ``now``: every text made storable, the same keys for
    every message (so many rows can go in one ``executemany``). Raises InvalidInput for a JID or time kanmon refuses.
    """
    # Only the shape a row needs here: kanmon's doors (the CLI, tasks, agent actions, the adapters' API) hold new JIDs
    # to kanmon.folders.jid_problem, but chats stored before that rule still get their replies, notices and tasks.
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
