"""A run's bookkeeping in two write transactions (SPEC §9, §10): one to begin it, one to end it.

* :meth:`RunStore.begin_runs` takes a lane's next batch and records the run (``starting``) in one transaction, with
  the group's queued system messages flushed and the session resolved (with the reset a fresh one follows, to tell
  the agent: :mod:`kanmon.store.resets`). Several lanes starting
  together begin in one transaction.
* :meth:`RunStore.record_replies` stores replies while a run streams, many per transaction; a reply recorded before
  (a reclaimed run replays its output from the start) is recognised by ``(run_id, output_index)`` and skipped.
* :meth:`RunStore.finish_runs` applies outcomes: the replies not yet recorded, the rows' new status, the session,
  the run's status and the chat's cursor, for any number of runs in one transaction.

All three are fenced writes (:class:`~kanmon.store.StoreFenced` once another gated holds the store).

Each chat's ``agent_cursor`` is its low-water mark: the highest seq below which no row of the chat still waits.
Two web topics of one chat run in parallel and finish in any order, so "the batch's last seq" alone could jump over
rows the other topic has not consumed yet; the low-water mark never does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, and_, bindparam, delete, func, select, update

from kanmon.store.base import StoreBase, from_rows, upsert_statement
from kanmon.store.lanes import LaneHead, lane_batch, lane_heads
from kanmon.store.messages import insert_new, lock_appends
from kanmon.store.records import Message, NewMessage, Run, RunStatus, SystemMessage
from kanmon.store.resets import SessionReset, close_flush, take_reset, untold_reset
from kanmon.store.tables import chats, messages, run_logs, session_log, sessions, system_messages
from kanmon.store.text import storable
from kanmon.store.usage import UsageEntry, record_usage

__all__ = ["RunBegin", "RunDraft", "RunEnd", "RunEnded", "RunStart", "RunStore"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDraft:
    """A run about to take a batch: what is known before the batch is (the rest comes from the batch)."""

    id: str
    instance: str
    runtime: str
    started_at: dt.datetime
    container: str | None = None
    #: ``running`` when the agent is already up, waiting for its input (kanmon starts it before taking the batch)
    status: RunStatus = "starting"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunBegin:
    """Begin ``draft`` on the next batch of ``folder`` whose head ``accept`` takes (streams oldest first).

    Sessions expire before this, by the group's reset policy (:mod:`kanmon.gateway.session_policy`).
    """

    draft: RunDraft
    folder: str
    accept: Callable[[LaneHead], bool]
    limit: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    """A run recorded as ``starting`` with its batch: consecutive waiting rows of one chat, topic and origin."""

    run: Run
    head: LaneHead
    rows: list[Message]
    notes: list[SystemMessage]
    session_id: str | None
    reset: SessionReset | None = None  # the reset this run's fresh session follows, for its prompt to say
    more: bool = False  # rows of the lane wait beyond this batch (another stream, or past the batch limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnd:
    """How a run's batch ends (SPEC §9): the rows' new status, the run's, the session's, and replies to record.

    ``run_id`` None is a dead letter, which closes no run. ``replies`` are stored with the outcome (those not yet
    recorded while the run streamed, an apology); ones already recorded are skipped.
    """

    run_id: str | None
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
    replies: Sequence[NewMessage] = ()
    usage: Sequence[UsageEntry] = ()  # what the outputs reported; entries recorded before are skipped
    #: the run log (``gated run-log``): capped tails of the agent's stderr and of its stdout outside blocks, already
    #: redacted; kept in ``run_logs`` when either is not empty
    stderr: str = ""
    stdout: str = ""
    #: the run was a memory flush turn (:mod:`kanmon.store.resets`): its end closes the flush of ``(folder, topic)``
    #: and leaves the session alone (the old one is gone; the fresh one is not this run's)
    flush: bool = False


@dataclass(frozen=True, slots=True)
class RunEnded:
    """What :meth:`RunStore.finish_runs` did for one end: the chat's cursor afterwards, the replies it stored, the
    usage entries it recorded (not those recorded before)."""

    cursor: int
    stored: list[Message]
    usage: list[UsageEntry] = dataclasses.field(default_factory=list)


class RunStore(StoreBase):
    """The run log's writes and the reads that go with them."""

    def begin_runs(self, begins: Sequence[RunBegin], *, now: dt.datetime) -> list[RunStart | None]:
        """Begin each run on its lane's next batch (None where nothing waits), all in one transaction."""
        with self._write(fenced=True) as conn:
            return [_begin(conn, self, begin, now) for begin in begins]

    def record_replies(self, replies: Sequence[NewMessage], *, now: dt.datetime) -> list[Message]:
        """Store run replies in one transaction; returns the rows created (those recorded before are skipped)."""
        if not replies:
            return []
        with self._write(fenced=True) as conn:
            lock_appends(conn)
            return insert_new(conn, replies, now)

    def finish_runs(self, ends: Sequence[RunEnd], *, now: dt.datetime) -> list[RunEnded]:
        """Apply each outcome (SPEC §9) in one transaction, in order."""
        with self._write(fenced=True) as conn:
            if any(end.replies for end in ends):
                lock_appends(conn)
            return [_finish(conn, self, end, now) for end in ends]

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
            return from_rows(Message, conn.execute(query))

    def count_outputs(self, run_id: str) -> int:
        """How many replies run ``run_id`` has stored."""
        with self._read() as conn:
            query = select(func.count()).select_from(messages).where(messages.c.run_id == run_id)
            return int(conn.execute(query).scalar_one())

    def recent_runs(self, limit: int = 10) -> list[Run]:
        """The latest runs, newest first."""
        query = select(session_log).order_by(session_log.c.started_at.desc(), session_log.c.id.desc()).limit(limit)
        with self._read() as conn:
            return from_rows(Run, conn.execute(query))

    def busiest_folders(self, limit: int) -> list[str]:
        """The ``limit`` group folders with the most runs recorded, busiest first (the metrics' ``folder`` labels
        are given to them first); one grouped read at start."""
        runs = func.count().label("runs")
        query = (
            select(session_log.c.group_folder, runs)
            .group_by(session_log.c.group_folder)
            .order_by(runs.desc(), session_log.c.group_folder)
            .limit(limit)
        )
        with self._read() as conn:
            return [str(folder) for folder, _ in conn.execute(query)]


def _begin(conn: Connection, store: StoreBase, begin: RunBegin, now: dt.datetime) -> RunStart | None:
    heads = [head for head in lane_heads(conn, begin.folder) if begin.accept(head)]
    for index, head in enumerate(heads):
        rows = lane_batch(conn, head, begin.limit)
        if rows:
            more = index + 1 < len(heads) or head.count > len(rows)
            break
    else:
        return None
    session_id, reset = _session(conn, begin, head)
    draft = begin.draft
    run = Run(
        id=draft.id,
        instance=draft.instance,
        group_folder=begin.folder,
        topic=head.topic,
        chat_jid=head.chat_jid,
        runtime=draft.runtime,
        status=draft.status,
        started_at=draft.started_at,
        session_id=session_id,
        container=draft.container,
        first_seq=rows[0].seq,
        last_seq=rows[-1].seq,
        message_count=len(rows),
    )
    conn.execute(_INSERT_RUN, dataclasses.asdict(run))
    notes = from_rows(SystemMessage, conn.execute(_NOTES, {"b_folder": begin.folder}))
    if notes:
        conn.execute(_DELETE_NOTES, {"b_ids": [note.id for note in notes]})
    return RunStart(run=run, head=head, rows=rows, notes=notes, session_id=session_id, reset=reset, more=more)


def _session(conn: Connection, begin: RunBegin, head: LaneHead) -> tuple[str | None, SessionReset | None]:
    """The session the run resumes (SPEC §10), else the reset its fresh one follows, if any (told once)."""
    session_id = conn.execute(_SESSION, {"b_folder": begin.folder, "b_topic": head.topic}).scalar_one_or_none()
    if session_id is not None:
        return str(session_id), None
    return None, take_reset(conn, begin.folder, head.topic)


def _finish(conn: Connection, store: StoreBase, end: RunEnd, now: dt.datetime) -> RunEnded:
    stored = insert_new(conn, end.replies, now) if end.replies else []
    recorded = record_usage(conn, end.usage)
    if end.rows != "new" and end.seqs:
        conn.execute(_SETTLE_ROWS, {"b_seqs": list(end.seqs), "b_folder": end.folder, "b_status": end.rows})
    if end.flush:
        close_flush(conn, end.folder, end.topic)
    else:
        _apply_session(conn, store, end, now)
    if end.run_id is not None:
        error = None if end.error is None else storable(end.error)
        values = {"b_id": end.run_id, "status": end.run_status, "ended_at": now, "output_count": end.output_count}
        conn.execute(_END_RUN, {**values, "error": error})
        if end.stderr or end.stdout:
            log = {"run_id": end.run_id, "stderr": storable(end.stderr), "stdout": storable(end.stdout)}
            conn.execute(
                upsert_statement(store.dialect, run_logs, ("run_id",), _LOG_VALUES), {**log, "recorded_at": now}
            )
    return RunEnded(advance_cursor(conn, store, end.chat_jid), stored, recorded)


def _apply_session(conn: Connection, store: StoreBase, end: RunEnd, now: dt.datetime) -> None:
    key = {"b_folder": end.folder, "b_topic": end.topic}
    if end.evict_session:
        conn.execute(_DELETE_SESSION, key)
    elif end.session_id and not untold_reset(conn, end.folder, end.topic):  # a /new during the run wins over it
        values = {"group_folder": end.folder, "topic": end.topic, "session_id": storable(end.session_id)}
        conn.execute(
            upsert_statement(store.dialect, sessions, _SESSION_KEY, _SESSION_VALUES), {**values, "updated_at": now}
        )
    else:
        # the session was used: its idle clock (SPEC §10 session_idle_expiry) starts again
        conn.execute(_TOUCH_SESSION, {**key, "updated_at": now})


def advance_cursor(conn: Connection, store: StoreBase, chat_jid: str) -> int:
    """Move the chat's agent cursor to its low-water mark (never backwards); return it.

    One read for all three figures (the cursor, the oldest row still waiting past it, the newest row past it) and a
    write only when the cursor moves: this runs at the end of every run.
    """
    cursor, oldest_waiting, newest = conn.execute(_CURSOR_FIGURES, {"b_jid": chat_jid}).one()
    cursor = int(cursor)
    # before the oldest row still waiting, else past the newest row (all answered), else where it is
    last = cursor if newest is None else int(newest)
    mark = last if oldest_waiting is None else int(oldest_waiting) - 1
    if mark <= cursor:
        return cursor
    conn.execute(
        upsert_statement(store.dialect, chats, ("jid",), ("agent_cursor",)), {"jid": chat_jid, "agent_cursor": mark}
    )
    return mark


# The statements of every run's two transactions, built once and executed with parameters: building a statement
# costs SQLAlchemy more than the database takes to run it (the issue 13 profile: 60 % of a run's bookkeeping).
# Parameters are named b_… where a column of the same name would otherwise be taken for a value to SET.
_INSERT_RUN = session_log.insert()
_NOTES = (
    select(system_messages)
    .where(system_messages.c.group_folder == bindparam("b_folder"))
    .order_by(system_messages.c.id)
)
_DELETE_NOTES = delete(system_messages).where(system_messages.c.id.in_(bindparam("b_ids", expanding=True)))
_SESSION_OF = and_(sessions.c.group_folder == bindparam("b_folder"), sessions.c.topic == bindparam("b_topic"))
_SESSION = select(sessions.c.session_id).where(_SESSION_OF)
_DELETE_SESSION = delete(sessions).where(_SESSION_OF)
_TOUCH_SESSION = update(sessions).where(_SESSION_OF)  # SET updated_at from the parameters
_SESSION_KEY = ("group_folder", "topic")
_SESSION_VALUES = ("session_id", "updated_at")
_LOG_VALUES = ("stderr", "stdout", "recorded_at")
# The folder is what the batch was routed to anyway; named here, it lets SQLite look each row up by the
# (status, routed_folder, seq) index, where ``status = 'new'`` alone had it walk every waiting row of every folder
# (a backlog made each run's end O(backlog): 478 of the throughput bench's samples, the run path's costliest statement).
_SETTLE_ROWS = (
    update(messages)
    .where(
        messages.c.seq.in_(bindparam("b_seqs", expanding=True)),
        messages.c.status == "new",
        messages.c.routed_folder == bindparam("b_folder"),
    )
    .values(status=bindparam("b_status"))
)
_END_RUN = update(session_log).where(session_log.c.id == bindparam("b_id"))  # SET status, ended_at, … likewise
_CURSOR = func.coalesce(select(chats.c.agent_cursor).where(chats.c.jid == bindparam("b_jid")).scalar_subquery(), 0)
# only rows past the cursor can still wait: the (chat_jid, seq) index starts there, not at the chat's first row
_AHEAD = and_(messages.c.chat_jid == bindparam("b_jid"), messages.c.direction == "in", messages.c.seq > _CURSOR)
_CURSOR_FIGURES = select(
    _CURSOR,
    select(func.min(messages.c.seq)).where(_AHEAD, messages.c.status == "new").scalar_subquery(),
    select(func.max(messages.c.seq)).where(_AHEAD).scalar_subquery(),
)
