"""Runs that begin together begin in one transaction with a fixed number of statements, and with the result of
beginning them one by one, in order (``kanmon.store.run_begins``; issue 13).

Each run's begin used to send its six statements in turn, and every other starting run waited for the whole
transaction. The contract: the same begins applied together and applied one at a time, on two stores with the same
history, take the same batches, sessions, resets and notes, and leave the same rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kanmon.store import Dispatch, Group, LaneHead, NewMessage, RunBegin, RunDraft, RunEnd, RunStart, Store
from tests.store.twin_stores import rows_of, statements_sent, twins

__all__ = ["twins"]  # the fixture

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Plan:
    """One run to begin on the stream of (folder, chat, topic), and the history before it."""

    folder: int
    chat: int
    topic: str
    messages: int  # rows of the stream waiting (0: the run finds nothing it accepts)
    interleaved: bool  # a row of another topic of the same chat and folder arrives among them
    limit: int
    notes: int  # system messages queued for the folder
    session: bool  # (folder, topic) has a session
    reset: str  # "" none, "untold", "flush"


PLANS = st.builds(
    Plan,
    folder=st.integers(0, 1),
    chat=st.integers(0, 2),
    topic=st.sampled_from(["", "t"]),
    messages=st.integers(0, 3),
    interleaved=st.booleans(),
    limit=st.integers(1, 3),
    notes=st.integers(0, 2),
    session=st.booleans(),
    reset=st.sampled_from(["", "untold", "flush"]),
)
EXAMPLE = itertools.count()


def plan(chat: int, **fields: Any) -> Plan:
    """A run of group 0's main topic in chat ``chat`` over two waiting rows, with ``fields`` changed."""
    values: dict[str, Any] = {
        "folder": 0, "chat": chat, "topic": "", "messages": 2, "interleaved": False, "limit": 5, "notes": 0,
        "session": False, "reset": "",
    }  # fmt: skip
    return Plan(**{**values, **fields})


def prepare(store: Store, tag: str, plans: list[Plan]) -> list[RunBegin]:
    """The history of ``plans`` in ``store`` (groups, routed rows, sessions, resets, notes); the begins."""
    for number in sorted({plan.folder for plan in plans}):
        store.add_group(Group(folder=f"{tag}f{number}"))
    begins = []
    for n, plan in enumerate(plans):
        folder, chat = f"{tag}f{plan.folder}", f"telegram:{tag}c{plan.chat}"
        routed: list[tuple[int, str]] = []
        for m in range(plan.messages):
            topics = [plan.topic, "other"] if plan.interleaved and m == 1 else [plan.topic]
            for k, topic in enumerate(topics):
                new = NewMessage(chat_jid=chat, content=f"{n}.{m}", id=f"{tag}m{n}.{m}.{k}", sender="a", timestamp=NOW)
                routed.append((store.put_message(new, now=NOW).message.seq, topic))
        if routed:
            dispatches = [Dispatch(seq, "new", folder, topic, None) for seq, topic in routed]
            store.record_dispatch(dispatches, max(seq for seq, _ in routed), now=NOW)
        for k in range(plan.notes):
            store.add_system_message(folder, origin="test", event=f"note {n}.{k}", now=NOW)
        if plan.session:
            store.finish_runs(
                [RunEnd(run_id=None, chat_jid=chat, seqs=[], rows="new", run_status="ok", folder=folder,
                        topic=plan.topic, session_id=f"{tag}s{n}")],
                now=NOW,
            )  # fmt: skip
        if plan.reset:
            store.reset_session(
                folder, plan.topic, chat_jid=chat, reason="new", detail="/new", flush=plan.reset == "flush", now=NOW
            )

        def accept(head: LaneHead, chat: str = chat, topic: str = plan.topic) -> bool:
            return head.chat_jid == chat and head.topic == topic

        draft = RunDraft(id=f"{tag}r{n}", instance="i", runtime="process", started_at=LATER)
        begins.append(RunBegin(draft=draft, folder=folder, accept=accept, limit=plan.limit))
    return begins


def taken(start: RunStart | None) -> Any:
    if start is None:
        return None
    notes = [note.event for note in start.notes]
    return start.run, start.head, [row.seq for row in start.rows], notes, start.session_id, start.reset, start.more


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=st.lists(PLANS, min_size=2, max_size=5, unique_by=lambda plan: (plan.folder, plan.chat, plan.topic)))
# two lanes of one session (two chats) after a reset: the first to begin is told, the second is not
@example(plans=[plan(0, reset="untold"), plan(1, reset="untold")])
@example(plans=[plan(0, reset="flush", session=True), plan(1)])
# two lanes of one group with notes queued: the first run takes them all
@example(plans=[plan(0, notes=2), plan(1, notes=1)])
# a batch that stops at a row of another topic, and one cut by its limit
@example(plans=[plan(0, messages=3, interleaved=True), plan(1, messages=3, limit=2)])
def test_begins_applied_together_take_what_begins_applied_one_by_one_take(
    twins: tuple[Store, Store], plans: list[Plan]
) -> None:
    together, one_by_one = twins
    tag = f"b{next(EXAMPLE)}"
    begins = prepare(together, tag, plans)
    prepare(one_by_one, tag, plans)
    assert rows_of(together, tag) == rows_of(one_by_one, tag)  # the same history

    batched = together.begin_runs(begins, now=LATER)
    single = [one_by_one.begin_runs([begin], now=LATER)[0] for begin in begins]

    assert [taken(start) for start in batched] == [taken(start) for start in single]
    assert rows_of(together, tag) == rows_of(one_by_one, tag)


def test_eight_runs_beginning_together_send_as_many_statements_as_one(store: Store) -> None:
    def statements(begins: list[RunBegin]) -> int:
        starts: list[RunStart | None] = []
        sent = statements_sent(store, lambda: starts.extend(store.begin_runs(begins, now=LATER)))
        assert starts and all(start is not None for start in starts)
        return len(sent)

    one = statements(prepare(store, "one", [plan(0, notes=1)]))
    eight = statements(prepare(store, "eight", [plan(n, folder=n, notes=1) for n in range(8)]))
    assert one == eight, f"one run's begin sent {one} statements, eight sent {eight}"
