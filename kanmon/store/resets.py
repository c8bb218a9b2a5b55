"""Session resets in the store (issue 16 items 2 and 3): the one transaction that resets a session, and the memory
flush turn's at-most-once bookkeeping.

:meth:`ResetStore.reset_session` is where every reset happens (a policy's, ``/new``'s): in one transaction it forgets
the session of ``(folder, topic)`` and records a ``session_resets`` row that says why, for the next run's prompt
(:func:`take_reset`, in the run's begin transaction), and, when the group flushes memory, which old session the
flush turn is for. The reset is durable before any flush runs, so a crash can never lose it.

The flush is claimed before it runs (:meth:`ResetStore.claim_flush` stamps ``flush_started_at`` and records the
turn in ``session_log``, in one transaction) and closed after (the run's end, :func:`close_flush`, or
:meth:`ResetStore.end_flush`); a claim already stamped is a flush a crash interrupted, and it is closed without
running again. The row goes once both the prompt has told the agent and no flush is left.

A ``(folder, topic)`` has one flush slot, which a later reset may give to a newer session while an older one's turn
is going on; so a turn claims and closes the slot only while it still holds the session the turn is for (compare
and set): a late end of an old session's turn never closes, nor a turn read for it claims, the flush of the next.

:meth:`ResetStore.session_chats` is what the expiry watcher reads: every session of some groups with the chat of its
latest run (its lane, its platform's policy, where a notice goes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, and_, bindparam, delete, func, select, update

from kanmon.store.base import StoreBase, from_row, from_rows, upsert_statement
from kanmon.store.lanes import sessions_in_flight
from kanmon.store.lists import in_list
from kanmon.store.records import Run
from kanmon.store.tables import session_log, session_resets, sessions
from kanmon.store.text import storable

__all__ = [
    "DELETE_SESSION",
    "SESSION_OF",
    "FlushClaim",
    "ResetReason",
    "ResetStore",
    "SessionChat",
    "SessionReset",
    "close_flush",
    "take_resets",
    "untold_resets",
]

ResetReason = Literal["idle", "daily", "new"]
#: What :meth:`ResetStore.claim_flush` did: took the flush, found it closed, or found its session held by a run.
FlushClaim = Literal["claimed", "closed", "busy"]


@dataclass(frozen=True, slots=True)
class SessionReset:
    """A reset of the session of ``(group_folder, topic)``: why (``reason`` idle, daily or new, ``detail`` in words),
    for which chat, and the old session whose flush turn is still to run (None: none is)."""

    group_folder: str
    topic: str
    chat_jid: str
    reason: str
    detail: str
    decided_at: dt.datetime
    announced: bool = False
    flush_session_id: str | None = None
    flush_started_at: dt.datetime | None = None

    @property
    def automatic(self) -> bool:
        """True for a policy's reset (the seed's ``was_auto_reset``), False for ``/new`` (``is_fresh_reset``)."""
        return self.reason != "new"


@dataclass(frozen=True, slots=True)
class SessionChat:
    """A stored session (``updated_at``: its last run's end) and ``chat_jid``, the chat of the latest run of its
    ``(group_folder, topic)`` (None when no run is recorded: a session set by hand)."""

    group_folder: str
    topic: str
    session_id: str
    updated_at: dt.datetime
    chat_jid: str | None


class ResetStore(StoreBase):
    """Session resets and their flush turns."""

    def reset_session(
        self,
        folder: str,
        topic: str,
        *,
        chat_jid: str,
        reason: ResetReason,
        detail: str,
        flush: bool,
        now: dt.datetime,
    ) -> SessionReset:
        """Forget the session of ``(folder, topic)`` and record why, in one transaction; with ``flush``, its old
        session id is kept for the memory flush turn (one not flushed yet from an earlier reset is kept too)."""
        key = {"b_folder": folder, "b_topic": topic}
        with self._write(fenced=True) as conn:
            old = conn.execute(_SESSION_ID, key).scalar_one_or_none()
            conn.execute(DELETE_SESSION, key)
            before = conn.execute(_RESET, key).first()
            pending = before.flush_session_id if before is not None else None
            started = before.flush_started_at if before is not None else None
            flush_id = old if flush and old is not None else pending
            values = {
                "group_folder": folder, "topic": topic, "chat_jid": chat_jid, "reason": reason,
                "detail": storable(detail), "decided_at": now, "announced": False, "flush_session_id": flush_id,
                "flush_started_at": started if flush_id == pending else None,
            }  # fmt: skip
            conn.execute(upsert_statement(self.dialect, session_resets, _KEY, _VALUES), values)
            return from_row(SessionReset, conn.execute(_RESET, key).one())

    def pending_flushes(self, *folders: str) -> list[SessionReset]:
        """The resets of ``folders`` whose flush turn has not been closed (claimed or not), oldest first."""
        query = (
            select(session_resets)
            .where(session_resets.c.group_folder.in_(folders), session_resets.c.flush_session_id.is_not(None))
            .order_by(session_resets.c.decided_at)
        )
        with self._read() as conn:
            return from_rows(SessionReset, conn.execute(query))

    def session_chats(self, *folders: str) -> list[SessionChat]:
        """The sessions of ``folders``, each with the chat of its key's latest run (one read)."""
        with self._read() as conn:
            return from_rows(SessionChat, conn.execute(_SESSION_CHATS, {"b_folders": list(folders)}))

    def claim_flush(
        self, folder: str, topic: str, *, session_id: str, now: dt.datetime, run: Run | None = None
    ) -> FlushClaim:
        """Stamp the flush of ``(folder, topic)`` as started and record ``run``, its turn, in ``session_log`` (one
        transaction): ``claimed``. Recording nothing: ``closed`` when it was stamped already (a crash interrupted it:
        it must not run twice) or there is no flush of ``session_id`` (none, or a newer session's: a reset since
        replaced it); ``busy`` while a run in flight holds ``(folder, topic)`` (a run of another lane on the same
        session, :mod:`kanmon.store.run_begins`): the flush stays pending, for a later try."""
        key = {"b_folder": folder, "b_topic": topic, "b_session": session_id, "b_now": now}
        with self._write(fenced=True) as conn:
            if conn.execute(_CLAIMABLE, key).first() is None:
                return "closed"
            if (folder, topic) in sessions_in_flight(conn, [folder]):
                return "busy"
            conn.execute(_CLAIM, key)
            if run is not None:
                conn.execute(session_log.insert(), dataclasses.asdict(run))
            return "claimed"

    def end_flush(self, folder: str, topic: str, *, session_id: str) -> None:
        """Close the flush of ``session_id`` of ``(folder, topic)`` (failed or abandoned; one that ran closes with its
        run's end); a flush of another session, pending there since, stays."""
        with self._write(fenced=True) as conn:
            close_flush(conn, folder, topic, session_id)

    def get_reset(self, folder: str, topic: str = "") -> SessionReset | None:
        """The reset of ``(folder, topic)`` still recorded, if any."""
        with self._read() as conn:
            row = conn.execute(_RESET, {"b_folder": folder, "b_topic": topic}).first()
            return None if row is None else from_row(SessionReset, row)


def close_flush(conn: Connection, folder: str, topic: str, session_id: str) -> None:
    """Close the flush of ``(folder, topic)`` in ``conn``'s transaction if it is still that of ``session_id`` (a
    reset since may have left a newer session's there: it stays); the reset's row goes once the prompt told."""
    key = {"b_folder": folder, "b_topic": topic}
    conn.execute(_END_FLUSH, {**key, "b_session": session_id})
    conn.execute(_DROP_DONE, key)


def take_resets(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SessionReset]:
    """The resets the next prompts of the ``(folder, topic)`` keys must mention, marked told (in the runs' begin
    transaction); keys without one are left out. Called only for keys without a session: the first run after a
    reset makes one."""
    untold = untold_resets(conn, keys)
    if untold:
        told = [{"b_folder": folder, "b_topic": topic} for folder, topic in untold]
        conn.execute(_TELL, told)
        conn.execute(_DROP_DONE, told)
    return untold


def untold_resets(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SessionReset]:
    """The resets of the ``(folder, topic)`` keys no prompt has told yet, in one read (keys without one are left
    out). A run that begins tells its prompt; a run that ends keeps its session out while one waits (a ``/new``
    decided during the run wins over it)."""
    if not keys:
        return {}
    params = {"b_folders": sorted({folder for folder, _ in keys}), "b_topics": sorted({topic for _, topic in keys})}
    wanted = set(keys)
    found = (from_row(SessionReset, row) for row in conn.execute(_UNTOLD_KEYS, params))
    return {(reset.group_folder, reset.topic): reset for reset in found if (reset.group_folder, reset.topic) in wanted}


_KEY = ("group_folder", "topic")
_VALUES = ("chat_jid", "reason", "detail", "decided_at", "announced", "flush_session_id", "flush_started_at")
_OF = and_(session_resets.c.group_folder == bindparam("b_folder"), session_resets.c.topic == bindparam("b_topic"))
#: The session of ``(b_folder, b_topic)``, and its deletion: resets and run ends (:mod:`kanmon.store.run_ends`)
#: both forget sessions, by the same statement.
SESSION_OF = and_(sessions.c.group_folder == bindparam("b_folder"), sessions.c.topic == bindparam("b_topic"))
_SESSION_ID = select(sessions.c.session_id).where(SESSION_OF)
DELETE_SESSION = delete(sessions).where(SESSION_OF)
_RESET = select(session_resets).where(_OF)
_UNTOLD_KEYS = select(session_resets).where(
    in_list(session_resets.c.group_folder, "b_folders"),
    in_list(session_resets.c.topic, "b_topics"),
    session_resets.c.announced.is_(False),
)
_TELL = update(session_resets).where(_OF).values(announced=True)
_FLUSH_OF = session_resets.c.flush_session_id == bindparam("b_session")
_CLAIMABLE = select(session_resets.c.topic).where(_OF, _FLUSH_OF, session_resets.c.flush_started_at.is_(None))
_CLAIM = (
    update(session_resets)
    .where(_OF, _FLUSH_OF, session_resets.c.flush_started_at.is_(None))
    .values(flush_started_at=bindparam("b_now"))
)
_END_FLUSH = update(session_resets).where(_OF, _FLUSH_OF).values(flush_session_id=None, flush_started_at=None)
_LATEST_CHAT = (
    select(session_log.c.chat_jid)
    .where(session_log.c.group_folder == sessions.c.group_folder, session_log.c.topic == sessions.c.topic)
    .order_by(session_log.c.started_at.desc())
    .limit(1)
    .scalar_subquery()
)
_SESSION_CHATS = select(*sessions.c, _LATEST_CHAT.label("chat_jid")).where(
    in_list(sessions.c.group_folder, "b_folders")
)
_DROP_DONE = delete(session_resets).where(
    _OF, session_resets.c.announced.is_(True), func.coalesce(session_resets.c.flush_session_id, "") == ""
)
