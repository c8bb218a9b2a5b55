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

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select

from kanmon.store.appends import insert_new, lock_appends
from kanmon.store.base import StoreBase, from_rows
from kanmon.store.records import Message, NewMessage, Run
from kanmon.store.run_begins import RunBegin, RunDraft, RunStart, begin_all
from kanmon.store.run_ends import RunEnd, RunEnded, finish_all
from kanmon.store.tables import messages, session_log

__all__ = ["RunBegin", "RunDraft", "RunEnd", "RunEnded", "RunStart", "RunStore"]


class RunStore(StoreBase):
    """The run log's writes and the reads that go with them."""

    def begin_runs(self, begins: Sequence[RunBegin], *, now: dt.datetime) -> list[RunStart | None]:
        """Begin each run on its lane's next batch (None where nothing waits), all in one transaction."""
        with self._write(fenced=True) as conn:
            return begin_all(conn, begins)

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
