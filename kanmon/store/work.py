"""The work the loop hands to agents: dispatch records, the rows waiting per lane, and the end of a run.

An inbound row's ``status`` says where it stands (``new`` → ``done`` | ``dead`` | ``skipped``), and the loop records
*where* a waiting row goes (``routed_folder``, ``routed_topic``, ``routed_content``) in the same transaction that
moves the poll cursor (SPEC §5.3). A run reads its batch from those columns and never routes a row again.

Each chat's ``agent_cursor`` is its low-water mark: the highest seq below which no row of the chat still waits.
Two web topics of one chat run in parallel and finish in any order, so "the batch's last seq" alone could jump over
rows the other topic has not consumed yet; the low-water mark never does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, bindparam, delete, func, or_, select, update

from kanmon.store.base import StoreBase, from_row, utcnow
from kanmon.store.records import Chat, Message, Run, RunStatus, SystemMessage
from kanmon.store.tables import chats, messages, router_state, session_log, sessions, system_messages

__all__ = ["BatchEnd", "ChatLag", "Dispatch", "LaneHead", "WorkStore"]

POLL_CURSOR_KEY = "last_seq"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The loop's decision for one inbound row: wait for ``folder``'s agent (status ``new``), or be settled now."""

    seq: int
    status: Literal["new", "done", "skipped"]
    folder: str | None = None
    topic: str | None = None
    content: str | None = None


@dataclass(frozen=True, slots=True)
class LaneHead:
    """The oldest waiting row of one (folder, chat, topic, origin) stream: where the next batch of it starts."""

    folder: str
    chat_jid: str
    topic: str
    forwarded_from: str | None
    first_seq: int
    count: int


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """How a run's batch ends: the rows' new status, the run's status, and what happens to the session."""

    run_id: str | None  # None for a dead letter, which closes no run
    chat_jid: str
    seqs: Sequence[int]
    rows: Literal["done", "dead", "new"]  # "new": left waiting for a retry
    run_status: RunStatus
    folder: str
    topic: str
    session_id: str | None = None  # stored as the session of (folder, topic) when given
    evict_session: bool = False
    output_count: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ChatLag:
    """A chat with rows waiting for its agent (``gated status``)."""

    chat_jid: str
    agent_cursor: int
    waiting: int
    oldest_seq: int


class WorkStore(StoreBase):
    """Dispatch, lanes, runs' start and end, deliveries."""

    # ------------------------------------------------------------------------------------------------ the poll cursor
    def poll_cursor(self) -> int:
        """``router_state.last_seq``: every row at or below it has been dispatched."""
        with self._read() as conn:
            value = conn.execute(select(router_state.c.value).where(router_state.c.key == POLL_CURSOR_KEY)).scalar()
            return int(value or 0)

    def record_dispatch(self, dispatches: Sequence[Dispatch], last_seq: int) -> None:
        """Record the batch's decisions and move the poll cursor to ``last_seq``, in one transaction.

        Only rows still ``new`` and not yet routed change: a batch re-read after a crash cannot undo what a run has
        done since, and the cursor never moves back.
        """
        undecided = (messages.c.direction == "in", messages.c.status == "new", messages.c.routed_folder.is_(None))
        routed = [
            {"b_seq": d.seq, "b_folder": d.folder, "b_topic": d.topic, "b_content": d.content}
            for d in dispatches
            if d.status == "new"
        ]
        with self._write(fenced=True) as conn:
            if routed:  # one statement, executed for every row (executemany), compiled once
                conn.execute(
                    update(messages)
                    .where(messages.c.seq == bindparam("b_seq"), *undecided)
                    .values(
                        routed_folder=bindparam("b_folder"),
                        routed_topic=bindparam("b_topic"),
                        routed_content=bindparam("b_content"),
                    ),
                    routed,
                )
            for status in ("done", "skipped"):
                seqs = [d.seq for d in dispatches if d.status == status]
                if seqs:
                    conn.execute(update(messages).where(messages.c.seq.in_(seqs), *undecided).values(status=status))
            current = conn.execute(select(router_state.c.value).where(router_state.c.key == POLL_CURSOR_KEY)).scalar()
            if current is None or int(current) < last_seq:
                conn.execute(self._upsert(router_state, {"key": POLL_CURSOR_KEY, "value": str(last_seq)}, ["key"]))

    # ------------------------------------------------------------------------------------------------ lanes
    def lane_heads(self, folder: str | None = None) -> list[LaneHead]:
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
        with self._read() as conn:
            return [
                LaneHead(str(f), str(jid), str(topic or ""), origin, int(first), int(n))
                for f, jid, topic, origin, first, n in conn.execute(query)
            ]

    def lane_batch(self, head: LaneHead, limit: int = 100) -> list[Message]:
        """The next batch of ``head``'s stream: its waiting rows from the oldest, in seq order, at most ``limit``.

        The batch stops at the first row of the same chat and folder in another topic or from another origin, so a
        batch is always one session's consecutive messages and the cursor can move past all of it.
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
        with self._read() as conn:
            for row in conn.execute(query):
                message = from_row(Message, row)
                if (message.routed_topic or "") != head.topic or message.forwarded_from != head.forwarded_from:
                    break
                batch.append(message)
        return batch

    def chat_lag(self, limit: int = 20) -> list[ChatLag]:
        """Chats with rows waiting for an agent, most waiting first."""
        query = (
            select(messages.c.chat_jid, func.count(), func.min(messages.c.seq), func.coalesce(chats.c.agent_cursor, 0))
            .select_from(messages.outerjoin(chats, chats.c.jid == messages.c.chat_jid))
            .where(messages.c.status == "new", messages.c.direction == "in")
            .group_by(messages.c.chat_jid, chats.c.agent_cursor)
            .order_by(func.count().desc(), messages.c.chat_jid)
            .limit(limit)
        )
        with self._read() as conn:
            return [ChatLag(str(jid), int(cursor), int(n), int(first)) for jid, n, first, cursor in conn.execute(query)]

    # ------------------------------------------------------------------------------------------------ runs
    def begin_run(self, run: Run) -> list[SystemMessage]:
        """Record ``run`` (``starting``) and take the group's queued system messages, in one transaction."""
        with self._write(fenced=True) as conn:
            conn.execute(session_log.insert().values(**_run_values(run)))
            query = (
                select(system_messages)
                .where(system_messages.c.group_folder == run.group_folder)
                .order_by(system_messages.c.id)
            )
            notes = [from_row(SystemMessage, row) for row in conn.execute(query)]
            if notes:
                conn.execute(delete(system_messages).where(system_messages.c.id.in_([note.id for note in notes])))
            return notes

    def end_batch(self, end: BatchEnd) -> int:
        """Apply a run's outcome (SPEC §9) in one transaction; returns the chat's agent cursor afterwards."""
        now = utcnow()
        with self._write(fenced=True) as conn:
            if end.rows != "new" and end.seqs:
                conn.execute(
                    update(messages)
                    .where(messages.c.seq.in_(list(end.seqs)), messages.c.status == "new")
                    .values(status=end.rows)
                )
            self._apply_session(conn, end, now)
            if end.run_id is not None:
                conn.execute(
                    update(session_log)
                    .where(session_log.c.id == end.run_id)
                    .values(status=end.run_status, ended_at=now, output_count=end.output_count, error=end.error)
                )
            return _advance_cursor(conn, self, end.chat_jid)

    def _apply_session(self, conn: Connection, end: BatchEnd, now: dt.datetime) -> None:
        key = (sessions.c.group_folder == end.folder, sessions.c.topic == end.topic)
        if end.evict_session:
            conn.execute(delete(sessions).where(*key))
        elif end.session_id:
            values = {"group_folder": end.folder, "topic": end.topic, "session_id": end.session_id, "updated_at": now}
            conn.execute(self._upsert(sessions, values, ["group_folder", "topic"]))
        else:
            # the session was used: its idle clock (SPEC §10 session_idle_expiry) starts again
            conn.execute(update(sessions).where(*key).values(updated_at=now))

    def run_rows(self, run: Run) -> list[Message]:
        """The rows of ``run``'s batch that still wait (all of them, unless another outcome settled them)."""
        if run.first_seq is None or run.last_seq is None:
            return []
        query = (
            select(messages)
            .where(
                messages.c.chat_jid == run.chat_jid,
                messages.c.seq.between(run.first_seq, run.last_seq),
                messages.c.status == "new",
                messages.c.routed_folder == run.group_folder,
                func.coalesce(messages.c.routed_topic, "") == run.topic,
            )
            .order_by(messages.c.seq)
        )
        with self._read() as conn:
            return [from_row(Message, row) for row in conn.execute(query)]

    def count_outputs(self, run_id: str) -> int:
        """How many replies run ``run_id`` has stored."""
        with self._read() as conn:
            query = select(func.count()).select_from(messages).where(messages.c.run_id == run_id)
            return int(conn.execute(query).scalar_one())

    def recent_runs(self, limit: int = 10) -> list[Run]:
        """The latest runs, newest first."""
        query = select(session_log).order_by(session_log.c.started_at.desc(), session_log.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [from_row(Run, row) for row in conn.execute(query)]

    # ------------------------------------------------------------------------------------------------ delivery
    def pending_deliveries(self, prefixes: Sequence[str], limit: int = 100, *, exact: bool = False) -> list[Message]:
        """Outbound rows still to send to chats whose JID starts with one of ``prefixes`` (with ``exact``: is one of
        them), due now, in seq order."""
        if not prefixes:
            return []
        now = utcnow()
        chats_matching: ColumnElement[bool]
        if exact:
            chats_matching = messages.c.chat_jid.in_(list(prefixes))
        else:
            chats_matching = or_(*(messages.c.chat_jid.startswith(prefix, autoescape=True) for prefix in prefixes))
        query = (
            select(messages)
            .where(
                messages.c.delivery_status == "pending",
                chats_matching,
                or_(messages.c.deliver_after.is_(None), messages.c.deliver_after <= now),
            )
            .order_by(messages.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return [from_row(Message, row) for row in conn.execute(query)]

    def oldest_pending_deliveries(self, jids: Sequence[str]) -> dict[str, int]:
        """The seq of each chat's oldest outbound row still ``pending``, due or backing off (chats without: absent)."""
        if not jids:
            return {}
        query = (
            select(messages.c.chat_jid, func.min(messages.c.seq))
            .where(messages.c.delivery_status == "pending", messages.c.chat_jid.in_(sorted(set(jids))))
            .group_by(messages.c.chat_jid)
        )
        with self._read() as conn:
            return {str(jid): int(seq) for jid, seq in conn.execute(query)}

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
            "delivery_error": error,
            "deliver_after": deliver_after,
        }
        if platform_message_id is not None:
            values["platform_message_id"] = platform_message_id
        stmt = update(messages).where(
            messages.c.seq == seq, messages.c.direction == "out", messages.c.delivery_status == "pending"
        )
        with self._write(fenced=True) as conn:
            return bool(conn.execute(stmt.values(**values)).rowcount)

    def mark_sent(self, seqs: Sequence[int]) -> int:
        """Mark many pending outbound rows ``sent`` in one statement (channels whose readers read the store)."""
        if not seqs:
            return 0
        stmt = (
            update(messages)
            .where(
                messages.c.seq.in_(list(seqs)), messages.c.direction == "out", messages.c.delivery_status == "pending"
            )
            .values(delivery_status="sent", delivery_attempts=messages.c.delivery_attempts + 1)
        )
        with self._write(fenced=True) as conn:
            return int(conn.execute(stmt).rowcount)

    def get_chats(self, jids: Sequence[str]) -> dict[str, Chat]:
        """The known chats among ``jids``, by JID, in one query."""
        if not jids:
            return {}
        with self._read() as conn:
            rows = conn.execute(select(chats).where(chats.c.jid.in_(sorted(set(jids)))))
            return {chat.jid: chat for chat in (from_row(Chat, row) for row in rows)}

    def chat_messages(
        self, chat_jid: str, after_seq: int = 0, *, topic: str | None = None, limit: int = 200
    ) -> list[Message]:
        """Messages of ``chat_jid`` (of ``topic`` when given) after ``after_seq``, both directions, in seq order."""
        query = (
            select(messages)
            .where(messages.c.chat_jid == chat_jid, messages.c.seq > after_seq)
            .order_by(messages.c.seq)
            .limit(limit)
        )
        if topic is not None:
            query = query.where(messages.c.topic == topic)
        with self._read() as conn:
            return [from_row(Message, row) for row in conn.execute(query)]


def _run_values(run: Run) -> dict[str, Any]:
    return {name: getattr(run, name) for name in session_log.c.keys()}  # noqa: SIM118 - ColumnCollection, not a dict


def _advance_cursor(conn: Connection, store: StoreBase, chat_jid: str) -> int:
    """Move the chat's agent cursor to its low-water mark (never backwards); return it."""
    current = int(conn.execute(select(chats.c.agent_cursor).where(chats.c.jid == chat_jid)).scalar() or 0)
    # only rows past the cursor can still wait: the (chat_jid, seq) index starts there, not at the chat's first row
    ahead = and_(messages.c.chat_jid == chat_jid, messages.c.direction == "in", messages.c.seq > current)
    oldest_waiting = conn.execute(select(func.min(messages.c.seq)).where(ahead, messages.c.status == "new")).scalar()
    if oldest_waiting is not None:
        mark = int(oldest_waiting) - 1
    else:
        mark = int(conn.execute(select(func.coalesce(func.max(messages.c.seq), 0)).where(ahead)).scalar_one())
    if mark <= current:
        return current
    conn.execute(store._upsert(chats, {"jid": chat_jid, "agent_cursor": mark}, ["jid"]))
    return mark
