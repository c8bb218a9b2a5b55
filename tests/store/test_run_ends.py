"""Runs that end together end in one transaction with a fixed number of statements, and with the result of ending
them one by one, in order (``kanmon.store.run_ends``; issue 13).

Each run's end used to send its seven statements in turn; a transaction of eight ends, which every other ending run
waited for, sent fifty-six (on PostgreSQL, fifty-six round trips). The equivalence is the contract that matters: the
same ends applied together and applied one at a time, on two stores with the same history, leave the same rows,
sessions, resets, runs, run logs, usage and cursors, and report the same replies and usage per end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from kanmon.store import Dispatch, Group, LaneHead, NewMessage, RunBegin, RunDraft, RunEnd, RunEnded, Store
from kanmon.store.usage import UsageEntry
from tests.store.twin_stores import rows_of, statements_sent, twins

__all__ = ["twins"]  # the fixture

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Plan:
    """One run's end to make, and the history before it."""

    folder: int
    topic: str
    chat: int
    messages: int  # inbound rows of the lane the run takes
    rows: str  # done, dead, new
    dead_letter: bool  # run_id None (no run recorded)
    session: str  # "" (touch), "id", "evict"
    flush: bool
    had_session: bool
    reset: str  # "" none, "untold", "flush"
    replies: int
    recorded: int  # of the replies, how many the run recorded while it streamed
    usage: bool
    log: bool


PLANS = st.builds(
    Plan,
    folder=st.integers(0, 1),
    topic=st.sampled_from(["", "t"]),
    chat=st.integers(0, 2),
    messages=st.integers(1, 3),
    rows=st.sampled_from(["done", "dead", "new"]),
    dead_letter=st.booleans(),
    session=st.sampled_from(["", "id", "evict"]),
    flush=st.booleans(),
    had_session=st.booleans(),
    reset=st.sampled_from(["", "untold", "flush"]),
    replies=st.integers(0, 2),
    recorded=st.integers(0, 2),
    usage=st.booleans(),
    log=st.booleans(),
)
EXAMPLE = itertools.count()


def prepare(store: Store, tag: str, plans: list[Plan]) -> list[RunEnd]:
    """The history of ``plans`` in ``store`` (groups, routed rows, sessions, resets, begun runs); their ends."""
    for number in sorted({plan.folder for plan in plans}):
        store.add_group(Group(folder=f"{tag}f{number}"))
    ends = []
    for n, plan in enumerate(plans):
        folder, chat = f"{tag}f{plan.folder}", f"telegram:{tag}c{plan.chat}"
        news = [
            NewMessage(chat_jid=chat, content=f"{n}.{m}", id=f"{tag}m{n}.{m}", sender="alice", timestamp=NOW)
            for m in range(plan.messages)
        ]
        seqs = [store.put_message(new, now=NOW).message.seq for new in news]
        store.record_dispatch([Dispatch(seq, "new", folder, plan.topic, None) for seq in seqs], max(seqs), now=NOW)
        if plan.had_session:
            store.finish_runs(
                [RunEnd(run_id=None, chat_jid=chat, seqs=[], rows="new", run_status="ok", folder=folder,
                        topic=plan.topic, session_id=f"{tag}s{n}")],
                now=NOW,
            )  # fmt: skip
        if plan.reset:
            store.reset_session(
                folder, plan.topic, chat_jid=chat, reason="new", detail="/new", flush=plan.reset == "flush",
                now=NOW,
            )  # fmt: skip
        run_id = f"{tag}r{n}"
        draft = RunDraft(id=run_id, instance="i", runtime="process", started_at=NOW)

        def accept(head: LaneHead, chat: str = chat, topic: str = plan.topic) -> bool:
            return head.chat_jid == chat and head.topic == topic

        if plan.dead_letter:  # no run took the rows: the dead letter of a lane's failed batch, read as it stands
            [head] = [head for head in store.lane_heads(folder) if accept(head)]
            rows = store.lane_batch(head)
        else:
            [start] = store.begin_runs([RunBegin(draft=draft, folder=folder, accept=accept)], now=NOW)
            assert start is not None
            rows = start.rows
        replies = [
            NewMessage(chat_jid=chat, content=f"reply {n}.{i}", id=f"{tag}out{n}.{i}", direction="out",
                       run_id=run_id, output_index=i, timestamp=NOW)
            for i in range(plan.replies)
        ]  # fmt: skip
        store.record_replies(replies[: plan.recorded], now=NOW)
        spent = [
            UsageEntry(run_id=run_id, output_index=0, group_folder=folder, topic=plan.topic, chat_jid=chat,
                       session_id=None, day="2026-11-30", recorded_at=NOW, input_tokens=10 + n, cost_usd=0.5)
        ] if plan.usage else []  # fmt: skip
        if plan.usage and plan.recorded:
            store.record_usage(spent)
        pending = store.get_reset(folder, plan.topic)  # a flush turn names the session whose flush it ran
        flush_of = (pending.flush_session_id if pending is not None else None) or f"{tag}gone{n}"
        ends.append(
            RunEnd(
                run_id=None if plan.dead_letter else run_id, chat_jid=chat,
                seqs=[row.seq for row in rows], rows="dead" if plan.dead_letter else plan.rows,  # type: ignore[arg-type]
                run_status="error" if plan.dead_letter else "ok", folder=folder, topic=plan.topic,
                session_id=f"{tag}new{n}" if plan.session == "id" else None, evict_session=plan.session == "evict",
                output_count=plan.replies, error="boom" if plan.rows == "dead" else None, replies=replies,
                usage=spent, stderr="err" if plan.log else "", flush_session=flush_of if plan.flush else None,
            )
        )  # fmt: skip
    return ends


def _STREAM(plan: Plan) -> tuple[int, str, int]:
    return plan.folder, plan.topic, plan.chat


def _RUN_OF_SESSION(plan: Plan) -> tuple[object, ...]:
    return (plan.folder, plan.topic) if not plan.dead_letter else (plan.folder, plan.topic, plan.chat, "dead letter")


def outcome(ended: RunEnded) -> tuple[Any, ...]:
    return [(row.seq, row.content) for row in ended.stored], ended.usage


def plan(chat: int, **fields: Any) -> Plan:
    """A plain end of group 0's main topic in chat ``chat``, with ``fields`` changed."""
    values: dict[str, Any] = {
        "folder": 0, "topic": "", "chat": chat, "messages": 1, "rows": "done", "dead_letter": False, "session": "",
        "flush": False, "had_session": False, "reset": "", "replies": 1, "recorded": 0, "usage": False, "log": False,
    }  # fmt: skip
    return Plan(**{**values, **fields})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# one run per session at a time (kanmon.store.run_begins): a session's other ends are dead letters, which take no run
@given(plans=st.lists(PLANS, min_size=2, max_size=5, unique_by=(_STREAM, _RUN_OF_SESSION)))
# two chats of one session: the session the run stores, the dead letter evicts (and the other way round)
@example(plans=[plan(0, session="id"), plan(1, session="evict", dead_letter=True)])
@example(plans=[plan(0, session="evict", had_session=True, dead_letter=True), plan(1, session="id")])
# a flush turn's end and another end of the same session: the reset the flush drops no longer overrules the session
@example(plans=[plan(0, flush=True, reset="flush", had_session=True), plan(1, session="id", dead_letter=True)])
def test_ends_applied_together_leave_what_ends_applied_one_by_one_leave(
    twins: tuple[Store, Store], plans: list[Plan]
) -> None:
    together, one_by_one = twins
    tag = f"x{next(EXAMPLE)}"
    ends = prepare(together, tag, plans)
    assert prepare(one_by_one, tag, plans) == ends
    assert rows_of(together, tag) == rows_of(one_by_one, tag)  # the same history

    batched = together.finish_runs(ends, now=LATER)
    single = [one_by_one.finish_runs([end], now=LATER)[0] for end in ends]

    assert rows_of(together, tag) == rows_of(one_by_one, tag)
    assert [outcome(ended) for ended in batched] == [outcome(ended) for ended in single]
    final = {end.chat_jid: ended.cursor for end, ended in zip(ends, single, strict=True)}  # the last end's, per chat
    assert [ended.cursor for ended in batched] == [final[end.chat_jid] for end in ends]


def test_ending_eight_runs_together_sends_as_many_statements_as_ending_one(store: Store) -> None:
    def ends(tag: str, count: int) -> list[RunEnd]:
        plans = [plan(n, folder=n, messages=2, session="id", usage=True, log=True) for n in range(count)]
        return prepare(store, tag, plans)

    def statements(ending: list[RunEnd]) -> int:
        return len(statements_sent(store, lambda: store.finish_runs(ending, now=LATER)))

    one, eight = statements(ends("one", 1)), statements(ends("eight", 8))
    assert one == eight, f"one end sent {one} statements, eight sent {eight}"
    with store.engine.connect() as conn:
        waiting = conn.execute(text("SELECT count(*) FROM messages WHERE status = 'new'")).scalar_one()
    assert waiting == 0
