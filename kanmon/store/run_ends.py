"""The ends of runs (SPEC §9, §10), set-based: any number of outcomes in one transaction, one statement per kind.

Runs that finish together share one transaction (:class:`kanmon.store.aio.GroupCommit`). Applied one by one, an
end cost seven statements, so a transaction of eight ends sent fifty-six, one after the other: on PostgreSQL each is
a round trip, and the transaction, which every other ending run waits for, grew with the number it served. Here the
statements are one per kind for all the ends (the replies, the rows' new status, the sessions, the runs' status, the
chats' cursors): about eight whatever their number.

The result is what applying the ends one by one, in order, gives; ``tests/store/test_run_ends.py`` checks exactly
that on both backends. Two kinds of ends depend on their order, and here is how they keep it:

* two ends of one session (``(folder, topic)``): one may evict or flush what the other stores, so then every end's
  session is applied in turn, in order;
* two ends of one chat: the cursor is the chat's low-water mark, computed once after every end's rows are settled,
  which is where applying them in order leaves it. Each :class:`RunEnded` of that chat reports that cursor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, bindparam, func, literal_column, select, union_all, update

from kanmon.store.appends import insert_new_groups
from kanmon.store.base import StoreBase, upsert_statement
from kanmon.store.lists import in_list
from kanmon.store.records import Message, NewMessage, RunStatus
from kanmon.store.resets import DELETE_SESSION, SESSION_OF, close_flush, untold_resets
from kanmon.store.tables import chats, messages, run_logs, session_log, sessions
from kanmon.store.text import storable
from kanmon.store.usage import UsageEntry, record_usage

__all__ = ["RunEnd", "RunEnded", "advance_cursors", "finish_all"]


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
    #: set when the run was the memory flush turn of this old session (:mod:`kanmon.store.resets`): its end closes
    #: the flush of ``(folder, topic)`` if it is still this session's (a reset since may have left a newer one's
    #: there) and leaves the session alone (the old one is gone; the fresh one is not this run's)
    flush_session: str | None = None


@dataclass(frozen=True, slots=True)
class RunEnded:
    """What :meth:`~kanmon.store.runs.RunStore.finish_runs` did for one end: the chat's cursor afterwards (after
    every end of the transaction), the replies it stored, the usage entries it recorded (not those recorded
    before)."""

    cursor: int
    stored: list[Message]
    usage: list[UsageEntry] = dataclasses.field(default_factory=list)


def finish_all(conn: Connection, store: StoreBase, ends: Sequence[RunEnd], now: dt.datetime) -> list[RunEnded]:
    """Apply ``ends`` in ``conn``'s transaction (which holds the append lock when any has replies); one result each."""
    stored = insert_new_groups(conn, [end.replies for end in ends], now)
    recorded = {id(entry) for entry in record_usage(conn, [entry for end in ends for entry in end.usage])}
    _settle_rows(conn, ends)
    _apply_sessions(conn, store, ends, now)
    _end_runs(conn, store, ends, now)
    cursors = advance_cursors(conn, store, [end.chat_jid for end in ends])
    return [
        RunEnded(cursors[end.chat_jid], rows, [entry for entry in end.usage if id(entry) in recorded])
        for end, rows in zip(ends, stored, strict=True)
    ]


def advance_cursors(conn: Connection, store: StoreBase, chat_jids: Sequence[str]) -> dict[str, int]:
    """Move each chat's agent cursor to its low-water mark (never backwards); return every chat's cursor.

    One read for the three figures of every chat (its cursor, its oldest row still waiting past it, its newest row
    past it) and one write for the cursors that move: this runs at the end of every run.
    """
    jids = list(dict.fromkeys(chat_jids))
    if not jids:
        return {}
    cursors: dict[str, int] = {}
    moved: list[dict[str, Any]] = []
    for index, cursor, oldest_waiting, newest in conn.execute(
        _cursor_figures(len(jids)), {f"b_jid_{n}": jid for n, jid in enumerate(jids)}
    ):
        jid, cursor = jids[int(index)], int(cursor)
        # before the oldest row still waiting, else past the newest row (all answered), else where it is
        last = cursor if newest is None else int(newest)
        mark = last if oldest_waiting is None else int(oldest_waiting) - 1
        if mark > cursor:
            moved.append({"jid": jid, "agent_cursor": mark})
            cursor = mark
        cursors[jid] = cursor
    if moved:
        conn.execute(upsert_statement(store.dialect, chats, ("jid",), ("agent_cursor",)), moved)
    return cursors


def _settle_rows(conn: Connection, ends: Sequence[RunEnd]) -> None:
    """The batches' rows take their new status: one statement per status (rows left ``new`` are left alone)."""
    by_status: dict[str, list[int]] = {}
    for end in ends:
        if end.rows != "new" and end.seqs:
            by_status.setdefault(end.rows, []).extend(end.seqs)
    for status, seqs in by_status.items():
        conn.execute(_SETTLE_ROWS, {"b_seqs": seqs, "b_status": status})


def _apply_sessions(conn: Connection, store: StoreBase, ends: Sequence[RunEnd], now: dt.datetime) -> None:
    """Each end's session: closed flush, evicted, stored, or touched (its idle clock starts again, SPEC §10)."""
    keys = [(end.folder, end.topic) for end in ends]
    if len(set(keys)) < len(keys):  # ends of one session depend on their order: each in turn
        for end in ends:
            _apply_sessions_of(conn, store, [end], now)
        return
    _apply_sessions_of(conn, store, ends, now)


def _apply_sessions_of(conn: Connection, store: StoreBase, ends: Sequence[RunEnd], now: dt.datetime) -> None:
    """:func:`_apply_sessions` for ends of distinct sessions, one statement per kind."""
    for end in ends:
        if end.flush_session is not None:
            close_flush(conn, end.folder, end.topic, end.flush_session)
    kept = [end for end in ends if end.flush_session is None]
    evicted = [_key(end) for end in kept if end.evict_session]
    claims = [(end, end.session_id) for end in kept if not end.evict_session and end.session_id]
    # a /new during the run wins over the session it ended with: that session is only touched
    overruled = untold_resets(conn, [(end.folder, end.topic) for end, _ in claims])
    storing = [(end, session_id) for end, session_id in claims if (end.folder, end.topic) not in overruled]
    stored = [
        {"group_folder": end.folder, "topic": end.topic, "session_id": storable(session_id), "updated_at": now}
        for end, session_id in storing
    ]
    storing_ids = {id(end) for end, _ in storing}
    touched = [{**_key(end), "updated_at": now} for end in kept if not end.evict_session and id(end) not in storing_ids]
    if evicted:
        conn.execute(DELETE_SESSION, evicted)
    if stored:
        conn.execute(upsert_statement(store.dialect, sessions, _SESSION_KEY, _SESSION_VALUES), stored)
    if touched:
        conn.execute(_TOUCH_SESSION, touched)


def _end_runs(conn: Connection, store: StoreBase, ends: Sequence[RunEnd], now: dt.datetime) -> None:
    """The runs' status and end time (a dead letter closes no run), and their run logs when not empty."""
    closing = [end for end in ends if end.run_id is not None]
    if not closing:
        return
    conn.execute(
        _END_RUN,
        [
            {
                "b_id": end.run_id, "status": end.run_status, "ended_at": now, "output_count": end.output_count,
                "error": None if end.error is None else storable(end.error),
            }
            for end in closing
        ],
    )  # fmt: skip
    logs = [
        {"run_id": end.run_id, "stderr": storable(end.stderr), "stdout": storable(end.stdout), "recorded_at": now}
        for end in closing
        if end.stderr or end.stdout
    ]
    if logs:
        conn.execute(upsert_statement(store.dialect, run_logs, ("run_id",), _LOG_VALUES), logs)


def _key(end: RunEnd) -> dict[str, str]:
    return {"b_folder": end.folder, "b_topic": end.topic}


@functools.cache
def _cursor_figures(count: int) -> Any:
    """The three cursor figures of ``count`` chats (parameters ``b_jid_0`` …), each row led by the chat's index.

    A ``UNION ALL`` of one small select per chat, built once per count: each select finds its figures through the
    ``(chat_jid, seq)`` index from the chat's cursor on, as one chat's read alone does.
    """
    return union_all(*(_figures_of(n) for n in range(count)))


def _figures_of(n: int) -> Any:
    jid = bindparam(f"b_jid_{n}", type_=chats.c.jid.type)
    cursor = func.coalesce(select(chats.c.agent_cursor).where(chats.c.jid == jid).scalar_subquery(), 0)
    # only rows past the cursor can still wait: the (chat_jid, seq) index starts there, not at the chat's first row
    ahead = and_(messages.c.chat_jid == jid, messages.c.direction == "in", messages.c.seq > cursor)
    return select(
        literal_column(str(n)),
        cursor,
        select(func.min(messages.c.seq)).where(ahead, _WAITING).scalar_subquery(),
        select(func.max(messages.c.seq)).where(ahead).scalar_subquery(),
    )


# Built once and executed with parameters (many rows: an executemany). Parameters are named b_… where a column of
# the same name would otherwise be taken for a value to SET.
_TOUCH_SESSION = update(sessions).where(SESSION_OF)  # SET updated_at from the parameters
_SESSION_KEY = ("group_folder", "topic")
_SESSION_VALUES = ("session_id", "updated_at")
_LOG_VALUES = ("stderr", "stdout", "recorded_at")
# ``coalesce(status, '')`` is ``status`` that no index can serve (outbound rows have none): found through the
# primary key (the seqs) or the chat's (chat_jid, seq) range, rows are only checked for being new. ``status = 'new'``
# let a planner without fresh statistics (SQLite always; PostgreSQL until ANALYZE, so on a burst's new rows) take
# the (status, routed_folder, seq) index and read every waiting row of every folder for each run's end: O(backlog)
# per run (tests/store/test_query_plans.py).
_WAITING = func.coalesce(messages.c.status, "") == "new"
_SETTLE_ROWS = update(messages).where(in_list(messages.c.seq, "b_seqs"), _WAITING).values(status=bindparam("b_status"))
_END_RUN = update(session_log).where(session_log.c.id == bindparam("b_id"))  # SET status, ended_at, … likewise
