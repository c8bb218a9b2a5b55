"""The beginnings of runs (SPEC §9, §10), set-based: any number of runs begin in one transaction, one statement per
kind.

Lanes that start together begin in one transaction (:class:`kanmon.store.aio.GroupCommit`). Begun one by one, a run
cost six statements (its lane's streams, its batch, its session, its reset, its row in ``session_log``, its
group's queued notes), and every other starting run waited for the whole transaction. Here there is one statement per
kind for all of them.

The result is what beginning them one by one, in order, gives (``tests/store/test_run_begins.py`` checks exactly
that on both backends). Beginning a run changes no row another begin reads, except what goes to the first run only,
as it would in order:

* a group's queued system messages (notes) go to its first run that begins;
* a session (``(folder, topic)``) goes to one run at a time: a stream whose session has a run in flight
  (``starting``/``running``, of this gated or another), or is taken by a run beginning before it in the same
  transaction, is passed over until that run ends. Lanes alone do not ensure it: a platform chat runs in its folder's
  lane and a web topic in its own (SPEC §2), so a forum thread ``42`` and a web topic ``42`` of one folder are two
  lanes on one session (``tests/store/test_one_run_per_session.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from kanmon.store.base import from_rows
from kanmon.store.lanes import LaneHead, lane_batch, lane_batches, lane_heads_of, sessions_in_flight
from kanmon.store.lists import in_list
from kanmon.store.records import Message, Run, RunStatus, SystemMessage
from kanmon.store.resets import SessionReset, take_resets
from kanmon.store.tables import session_log, sessions, system_messages

__all__ = ["RunBegin", "RunDraft", "RunStart", "begin_all"]


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


def begin_all(conn: Connection, begins: Sequence[RunBegin]) -> list[RunStart | None]:
    """Begin each run on its lane's next batch in ``conn``'s transaction (None where nothing waits that it accepts)."""
    folders = list(dict.fromkeys(begin.folder for begin in begins))
    heads_of = lane_heads_of(conn, folders)
    busy = sessions_in_flight(conn, folders)  # grows with each run's pick below: one run per session
    accepted = [
        [head for head in heads_of[begin.folder] if (begin.folder, head.topic) not in busy and begin.accept(head)]
        for begin in begins
    ]
    taking = [(n, heads[0]) for n, heads in enumerate(accepted) if heads]
    first = lane_batches(conn, [(head, begins[n].limit) for n, head in taking])
    picks: list[tuple[LaneHead, list[Message], bool] | None] = [None] * len(begins)
    for (n, _), rows in zip(taking, first, strict=True):
        picks[n] = _pick(conn, begins[n], accepted[n], rows, busy)
    taken = [(begin, pick) for begin, pick in zip(begins, picks, strict=True) if pick is not None]
    keys = list(dict.fromkeys((begin.folder, head.topic) for begin, (head, _, _) in taken))
    session_ids = _sessions(conn, keys)
    resets = take_resets(conn, [key for key in keys if key not in session_ids])
    notes = _take_notes(conn, list(dict.fromkeys(begin.folder for begin, _ in taken)))
    starts: dict[int, RunStart] = {}
    for n, (begin, pick) in enumerate(zip(begins, picks, strict=True)):
        if pick is None:
            continue
        head, rows, more = pick
        key = (begin.folder, head.topic)
        draft = begin.draft
        run = Run(
            id=draft.id, instance=draft.instance, group_folder=begin.folder, topic=head.topic,
            chat_jid=head.chat_jid, runtime=draft.runtime, status=draft.status, started_at=draft.started_at,
            session_id=session_ids.get(key), container=draft.container, first_seq=rows[0].seq, last_seq=rows[-1].seq,
            message_count=len(rows),
        )  # fmt: skip
        starts[n] = RunStart(
            run=run, head=head, rows=rows, notes=notes.pop(begin.folder, []), session_id=session_ids.get(key),
            reset=resets.pop(key, None), more=more,
        )  # fmt: skip
    if starts:
        conn.execute(_INSERT_RUN, [dataclasses.asdict(start.run) for start in starts.values()])
    return [starts.get(n) for n in range(len(begins))]


def _pick(
    conn: Connection, begin: RunBegin, heads: list[LaneHead], rows: list[Message], busy: set[tuple[str, str]]
) -> tuple[LaneHead, list[Message], bool] | None:
    """The stream ``begin`` takes: the first of ``heads`` with rows (``rows``: the first's) whose session is not
    ``busy``, and whether more wait. Its session joins ``busy``."""
    for index, head in enumerate(heads):
        if (begin.folder, head.topic) in busy:  # taken by a run that began before it in this transaction
            continue
        if index:  # the first's rows settled since its head was read, or its session was taken: read alone
            rows = lane_batch(conn, head, begin.limit)
        if rows:
            busy.add((begin.folder, head.topic))
            return head, rows, index + 1 < len(heads) or head.count > len(rows)
    return None


def _sessions(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The stored session of each ``(folder, topic)`` key that has one (SPEC §10), in one read."""
    if not keys:
        return {}
    params = {"b_folders": sorted({folder for folder, _ in keys}), "b_topics": sorted({topic for _, topic in keys})}
    wanted = set(keys)
    found = conn.execute(_SESSIONS, params)
    stored = {(str(folder), str(topic)): str(session_id) for folder, topic, session_id in found}
    return {key: session_id for key, session_id in stored.items() if key in wanted}


def _take_notes(conn: Connection, folders: list[str]) -> dict[str, list[SystemMessage]]:
    """The system messages queued for each of ``folders`` (oldest first), deleted: they go to the folder's run."""
    if not folders:
        return {}
    notes: dict[str, list[SystemMessage]] = {}
    for note in from_rows(SystemMessage, conn.execute(_NOTES, {"b_folders": folders})):
        notes.setdefault(note.group_folder, []).append(note)
    if notes:
        conn.execute(_DELETE_NOTES, {"b_ids": [note.id for queued in notes.values() for note in queued]})
    return notes


# Built once and executed with parameters: building a statement costs SQLAlchemy more than the database takes to
# run it (the issue 13 profile: 60 % of a run's bookkeeping).
_INSERT_RUN = session_log.insert()
_NOTES = (
    select(system_messages).where(in_list(system_messages.c.group_folder, "b_folders")).order_by(system_messages.c.id)
)
_DELETE_NOTES = delete(system_messages).where(in_list(system_messages.c.id, "b_ids"))
_SESSIONS = select(sessions.c.group_folder, sessions.c.topic, sessions.c.session_id).where(
    in_list(sessions.c.group_folder, "b_folders"),
    in_list(sessions.c.topic, "b_topics"),
)
