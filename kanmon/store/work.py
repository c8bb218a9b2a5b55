"""The loop's side of the store: the poll cursor, dispatch records and what waits per lane (SPEC §5).

An inbound row's ``status`` says where it stands (``new`` → ``done`` | ``dead`` | ``skipped``), and the loop records
*where* a waiting row goes (``routed_folder``, ``routed_topic``, ``routed_content``) in the same transaction that
moves the poll cursor (SPEC §5.3), together with every row the tick itself writes (command answers, delegations,
daemon outbox rows). A run reads its batch from those columns and never routes a row again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ARRAY, Connection, bindparam, case, func, select, update

from kanmon.store.appends import insert_new, lock_appends
from kanmon.store.base import CONFIG_VERSION_KEY, StoreBase, from_row, from_rows, upsert_statement
from kanmon.store.lanes import LaneHead, lane_batch, lane_heads
from kanmon.store.lists import in_list
from kanmon.store.records import Chat, Message, NewMessage
from kanmon.store.tables import chats, messages, router_state

__all__ = ["ChatLag", "Dispatch", "WorkStore"]

POLL_CURSOR_KEY = "last_seq"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The loop's decision for one inbound row: wait for ``folder``'s agent (status ``new``), or be settled now
    (``done``, ``skipped``). A ``done`` row with a ``folder`` was delegated: its copy waits in that folder's inbox,
    and the folder and topic are recorded on the row, so whoever follows its answer finds the copy."""

    seq: int
    status: Literal["new", "done", "skipped"]
    folder: str | None = None
    topic: str | None = None
    content: str | None = None


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

    def inbound_after(self, seq: int) -> tuple[bool, int]:
        """Whether an inbound row past ``seq`` is stored, and the highest seq stored (at least ``seq``): the loop's
        check, between polls, for rows another process put (``gated send``, ``gated chat`` against a running gated).

        Rows become visible in seq order, so a caller that passes the highest seq of its last check reads only the
        rows stored since (a long chatty run's replies are read once, not at every check)."""
        with self._read() as conn:
            top, inbound = conn.execute(_INBOUND_AFTER, {"b_after": seq}).one()
        return bool(inbound), max(seq, top or 0)

    def start_cursor(self) -> int:
        """Where the loop starts reading: the poll cursor, or past every row already decided when that is further.

        Rows before the first inbound row still undecided need no second look (each was routed once; outbound rows
        are never routed), so a poll cursor lost or restored from an old backup costs one indexed query, not a
        re-read of the whole history.
        """
        undecided = (messages.c.status == "new", messages.c.routed_folder.is_(None), messages.c.direction == "in")
        with self._read() as conn:
            stored = conn.execute(select(router_state.c.value).where(router_state.c.key == POLL_CURSOR_KEY)).scalar()
            first = conn.execute(select(func.min(messages.c.seq)).where(*undecided)).scalar()
            if first is None:
                first = int(conn.execute(select(func.coalesce(func.max(messages.c.seq), 0))).scalar_one()) + 1
        return max(int(stored or 0), int(first) - 1)

    def record_dispatch(
        self,
        dispatches: Sequence[Dispatch],
        last_seq: int,
        *,
        outbox: Sequence[NewMessage] = (),
        steering: Mapping[str, Mapping[str, str | None]] | None = None,
        now: dt.datetime | None = None,
    ) -> list[Message]:
        """Record a tick: its decisions, the rows it wrote (``outbox``), the chats' changed sticky settings
        (``steering``: by JID, only ``sticky_group`` and ``sticky_topic``; a chat not stored yet is created) and the
        poll cursor ``last_seq``, in one transaction; returns the outbox rows it created.

        Raises ValueError for a ``steering`` field other than the two sticky settings.

        Only rows still ``new`` and not yet routed change: a batch re-read after a crash cannot undo what a run has
        done since, and the cursor never moves back. Outbox rows carry derived ids, so a re-read batch stores each
        once.
        """
        routed = [
            {"b_seq": d.seq, "b_folder": d.folder, "b_topic": d.topic, "b_content": d.content}
            for d in dispatches
            if d.status == "new"
        ]
        steering = steering or {}
        for fields in steering.values():
            if not fields.keys() <= _STICKY:
                raise ValueError(f"not a sticky setting: {sorted(fields.keys() - _STICKY)}")
        with self._write(fenced=True) as conn:
            stored: list[Message] = []
            if outbox:
                lock_appends(conn)
                stored = insert_new(conn, outbox, self._stamp(now))
            for jid, fields in steering.items():
                conn.execute(self._upsert(chats, {"jid": jid, **fields}, ["jid"]))
            if routed and self.dialect == "postgresql":  # every route at once, as arrays
                conn.execute(_ROUTE_ARRAYS, {f"a_{name}": [route[f"b_{name}"] for route in routed] for name in _ROUTED})
            elif routed:  # one statement, executed for every row (executemany), compiled once
                conn.execute(_ROUTE, routed)
            _settle(conn, dispatches)
            current = conn.execute(_POLL_CURSOR).scalar()
            if current is None or int(current) < last_seq:
                upsert = upsert_statement(self.dialect, router_state, ("key",), ("value",))
                conn.execute(upsert, {"key": POLL_CURSOR_KEY, "value": str(last_seq)})
            return stored

    def config_version(self) -> int:
        """A number that changes whenever groups, routes or channels change (in any process): caches compare it."""
        with self._read() as conn:
            value = conn.execute(_CONFIG_VERSION).scalar()
            return int(value or 0)

    # ------------------------------------------------------------------------------------------------ lanes
    def lane_heads(self, folder: str | None = None) -> list[LaneHead]:
        """Every stream of rows waiting for an agent (of ``folder`` only, when given), oldest first."""
        with self._read() as conn:
            return lane_heads(conn, folder)

    def lane_batch(self, head: LaneHead, limit: int = 100) -> list[Message]:
        """The next batch of ``head``'s stream (see :func:`kanmon.store.lanes.lane_batch`)."""
        with self._read() as conn:
            return lane_batch(conn, head, limit)

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

    def get_chats(self, jids: Sequence[str]) -> dict[str, Chat]:
        """The known chats among ``jids``, by JID, in one query."""
        if not jids:
            return {}
        with self._read() as conn:
            rows = conn.execute(_CHATS, {"b_jids": sorted(set(jids))})
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
            return from_rows(Message, conn.execute(query))


def _settle(conn: Connection, dispatches: Sequence[Dispatch]) -> None:
    """The rows settled by a tick's decisions (``done``, ``skipped``), delegated ones with where their copy went."""
    delegated = [
        {"b_seq": d.seq, "b_folder": d.folder, "b_topic": d.topic}
        for d in dispatches
        if d.status == "done" and d.folder is not None
    ]
    if delegated:  # rare next to the rest: one statement, executed for each
        conn.execute(_DELEGATE, delegated)
    for status in ("done", "skipped"):
        seqs = [d.seq for d in dispatches if d.status == status and d.folder is None]
        if seqs:
            conn.execute(_SETTLE_UNDECIDED, {"b_seqs": seqs, "b_status": status})


# record_dispatch's statements (every tick) and config_version's (every cache check), built once: a reused statement
# skips SQLAlchemy's construction and cache-key work (the issue 13 profile). Only rows still new and undecided change.
_STICKY = frozenset({"sticky_group", "sticky_topic"})
_UNDECIDED = (messages.c.direction == "in", messages.c.status == "new", messages.c.routed_folder.is_(None))
_ROUTE = (
    update(messages)
    .where(messages.c.seq == bindparam("b_seq"), *_UNDECIDED)
    .values(
        routed_folder=bindparam("b_folder"), routed_topic=bindparam("b_topic"), routed_content=bindparam("b_content")
    )
)
# PostgreSQL: _ROUTE as one UPDATE … FROM unnest(arrays), one array per value (as kanmon.store.pg_append inserts).
# Executed once per row instead (executemany, even pipelined by psycopg), 200 routes took 15 ms and 4.7 ms of gated's
# CPU; this way 6–8 ms and 0.8–1.3 ms (issue 13). SQLite keeps executemany: it runs in-process, with no round trips.
_ROUTED = {
    "seq": messages.c.seq,
    "folder": messages.c.routed_folder,
    "topic": messages.c.routed_topic,
    "content": messages.c.routed_content,
}
_ROUTES_GIVEN = (
    func.unnest(*(bindparam(f"a_{name}", type_=ARRAY(column.type)) for name, column in _ROUTED.items()))
    .table_valued(*_ROUTED)
    .render_derived()
)
_ROUTE_ARRAYS = (
    update(messages)
    .where(messages.c.seq == _ROUTES_GIVEN.c.seq, *_UNDECIDED)
    .values(
        routed_folder=_ROUTES_GIVEN.c.folder, routed_topic=_ROUTES_GIVEN.c.topic, routed_content=_ROUTES_GIVEN.c.content
    )
)
_DELEGATE = (
    update(messages)
    .where(messages.c.seq == bindparam("b_seq"), *_UNDECIDED)
    .values(status="done", routed_folder=bindparam("b_folder"), routed_topic=bindparam("b_topic"))
)
_SETTLE_UNDECIDED = (
    update(messages).where(in_list(messages.c.seq, "b_seqs"), *_UNDECIDED).values(status=bindparam("b_status"))
)
_POLL_CURSOR = select(router_state.c.value).where(router_state.c.key == POLL_CURSOR_KEY)
_CHATS = select(chats).where(in_list(chats.c.jid, "b_jids"))
_CONFIG_VERSION = select(router_state.c.value).where(router_state.c.key == CONFIG_VERSION_KEY)


# inbound_after's query, built once (it runs every watch interval): the primary key's range past the seq given
_INBOUND_AFTER = select(func.max(messages.c.seq), func.max(case((messages.c.direction == "in", 1), else_=0))).where(
    messages.c.seq > bindparam("b_after")
)
