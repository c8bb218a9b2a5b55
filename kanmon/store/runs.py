"""A run's bookkeeping in two write transactions (SPEC §9, §10): one to begin it, one to end it.

* :meth:`RunStore.begin_runs` takes a lane's next batch and records the run (``starting``) in one transaction, with
  the group's queued system messages flushed and the session resolved (with the reset a fresh one follows, to tell
  the agent: :mod:`kanmon.store.resets`). Several lanes starting
  together begin in one transaction.
* :meth:`RunStore.record_replies` stores replies while a run streams, many per transaction; a reply recorded before
  (a reclaimed run replays its output from the start) is recognised by ``(run_id, output_index)`` and skipped.
* :meth:`RunStore.finish_runs` applies outcomes: the replies not yet recorded, the rows' new status, the session,
  the run's status and the chat's cursor, for any number of runs in one transaction, with one statement per kind
  for all of them (:mod:`kanmon.store.run_ends`).

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

from sqlalchemy import Connection, bindparam, delete, func, select

from kanmon.store.base import StoreBase, from_rows
from kanmon.store.lanes import LaneHead, lane_batch, lane_heads
from kanmon.store.messages import insert_new, lock_appends
from kanmon.store.records import Message, NewMessage, Run, RunStatus, SystemMessage
from kanmon.store.resets import SessionReset, take_reset
from kanmon.store.run_ends import RunEnd, RunEnded, finish_all
from kanmon.store.tables import messages, session_log, sessions, system_messages

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
        """Apply each outcome (SPEC §9) in one transaction, with the result of applying them in order; one statement
        per kind for all of them (:mod:`kanmon.store.run_ends`)."""
        with self._write(fenced=True) as conn:
            if any(end.replies for end in ends):
                lock_appends(conn)
            return finish_all(conn, self, ends, now)

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
_SESSION = select(sessions.c.session_id).where(
    sessions.c.group_folder == bindparam("b_folder"), sessions.c.topic == bindparam("b_topic")
)
