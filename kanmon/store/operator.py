"""What an operator reads and repairs from the command line (issue 18): runs, run logs, dead letters, replies.

``gated runs``, ``gated run-log``, ``gated dead`` and ``gated replies`` run in another process than ``gated run``
(perhaps on another machine), so everything they show is in the store. The one write here,
:meth:`OperatorStore.retry_dead`, puts dead letters back in one transaction; the daemon's periodic sweep of waiting
lanes (:mod:`kanmon.gateway.loop`) finds them there, like rows it has not run yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, select, update

from kanmon.store.base import StoreBase, from_row, from_rows
from kanmon.store.records import Message, Run
from kanmon.store.tables import chats, messages, run_logs, session_log

__all__ = ["OperatorStore", "RunLog"]


@dataclass(frozen=True, slots=True)
class RunLog:
    """A run's log: the last 64 KiB of its stderr and of its stdout outside output blocks, redacted, as recorded when
    it ended (``run_logs``; a run that wrote neither has no row)."""

    run_id: str
    stderr: str
    stdout: str
    recorded_at: dt.datetime


class OperatorStore(StoreBase):
    """The reads behind ``gated runs``, ``run-log``, ``dead`` and ``replies``, and putting dead letters back."""

    def list_runs(self, *, folder: str | None = None, statuses: Sequence[str] = (), limit: int = 50) -> list[Run]:
        """The latest runs (of ``folder``, with a status among ``statuses``, when given), newest first."""
        query = select(session_log).order_by(session_log.c.started_at.desc(), session_log.c.id.desc()).limit(limit)
        if folder is not None:
            query = query.where(session_log.c.group_folder == folder)
        if statuses:
            query = query.where(session_log.c.status.in_(list(statuses)))
        with self._read() as conn:
            return from_rows(Run, conn.execute(query))

    def run_log(self, run_id: str) -> RunLog | None:
        """The log recorded when run ``run_id`` ended; None when it wrote nothing (or has not ended)."""
        with self._read() as conn:
            row = conn.execute(select(run_logs).where(run_logs.c.run_id == run_id)).first()
            return None if row is None else from_row(RunLog, row)

    def dead_letters(self, *, chat_jid: str | None = None, limit: int = 200) -> list[Message]:
        """Inbound rows given up on (status ``dead``), of ``chat_jid`` when given, oldest first, at most ``limit``."""
        query = select(messages).where(*_dead(chat_jid)).order_by(messages.c.seq).limit(limit)
        with self._read() as conn:
            return from_rows(Message, conn.execute(query))

    def last_runs(self, rows: Sequence[Message]) -> dict[int, str]:
        """For each of ``rows`` (by seq), the id of the latest run whose batch held it, where there was one."""
        query = (
            select(session_log.c.id)
            .where(
                session_log.c.chat_jid == bindparam("b_jid"),
                session_log.c.first_seq <= bindparam("b_seq"),
                session_log.c.last_seq >= bindparam("b_seq"),
            )
            .order_by(session_log.c.started_at.desc(), session_log.c.id.desc())
            .limit(1)
        )
        found: dict[int, str] = {}
        with self._read() as conn:
            for row in rows:
                run_id = conn.execute(query, {"b_jid": row.chat_jid, "b_seq": row.seq}).scalar()
                if run_id is not None:
                    found[row.seq] = str(run_id)
        return found

    def retry_dead(self, *, chat_jid: str | None = None) -> list[int]:
        """Put every dead letter (of ``chat_jid`` when given) back to ``new``, in one transaction; returns their seqs.

        Each row keeps where the loop routed it (folder and topic), so its lane's agent takes it again as one batch
        of what waits, once: a row is put back only while it is ``dead``, so a second call (or two at once) finds
        nothing to put back. Each chat's agent cursor moves back before its oldest row put back, which keeps it a
        low-water mark (:mod:`kanmon.store.runs`). If the batch fails again it is a dead letter again; the chat's
        apology has the id of its first dead letter, so it is not sent twice.
        """
        with self._write() as conn:
            statement = update(messages).where(*_dead(chat_jid)).values(status="new")
            rows = conn.execute(statement.returning(messages.c.seq, messages.c.chat_jid)).all()
            oldest: dict[str, int] = {}
            for seq, jid in rows:
                oldest[jid] = min(int(seq), oldest.get(jid, int(seq)))
            for jid, seq in oldest.items():
                back = update(chats).where(chats.c.jid == jid, chats.c.agent_cursor >= seq).values(agent_cursor=seq - 1)
                conn.execute(back)
            return sorted(int(seq) for seq, _ in rows)

    def replies(self, chat_jid: str, *, since: dt.datetime | None = None, limit: int = 50) -> list[Message]:
        """The latest outbound rows of ``chat_jid`` (stored at or after ``since``, when given), in seq order."""
        query = select(messages).where(messages.c.chat_jid == chat_jid, messages.c.direction == "out")
        if since is not None:
            query = query.where(messages.c.received_at >= since)
        latest = query.order_by(messages.c.seq.desc()).limit(limit).subquery()
        with self._read() as conn:
            return from_rows(Message, conn.execute(select(latest).order_by(latest.c.seq)))


def _dead(chat_jid: str | None) -> list[ColumnElement[bool]]:
    where = [messages.c.direction == "in", messages.c.status == "dead"]
    if chat_jid is not None:
        where.append(messages.c.chat_jid == chat_jid)
    return where
