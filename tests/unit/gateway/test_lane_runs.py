"""Which sessions other lanes hold, as the runner sees it before it starts an agent (``kanmon.gateway.lane_runs``).

A forum thread ``42`` (the folder's lane) and a web topic ``42`` (a lane of its own) share the session (corp, 42): a
run of one, a run of the other reclaimed after a restart, or a memory flush turn of one holds it for both. The
store's begin passes over such a stream anyway; this is what spares an agent started for nothing.
"""

from __future__ import annotations

import datetime as dt

from kanmon.gateway.lane_runs import Begun, LaneRuns, held_elsewhere
from kanmon.gateway.prompt import Batch
from kanmon.queue import Lane
from kanmon.store import LaneHead, Run

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
THREAD, WEB = Lane("corp"), Lane("corp", "42")


def run(topic: str, folder: str = "corp") -> Run:
    return Run(id=f"r-{folder}-{topic}", instance="i", group_folder=folder, topic=topic, chat_jid="telegram:1",
               runtime="process", status="running", started_at=NOW)  # fmt: skip


def begun(topic: str, folder: str = "corp") -> LaneRuns:
    head = LaneHead(folder, "telegram:1", topic, None, 1, 1)
    return LaneRuns(begun=Begun(run(topic, folder), Batch(head, []), None, 0.0))


def test_a_begun_run_holds_its_session_for_the_other_lanes_of_its_folder_only() -> None:
    lanes = {THREAD: begun("42"), Lane("other"): begun("42", folder="other")}
    assert held_elsewhere(lanes, WEB) == {("corp", "42")}
    assert held_elsewhere(lanes, THREAD) == set()  # its own lane: the lane runs one run at a time anyway
    assert held_elsewhere(lanes, Lane("corp", "7")) == {("corp", "42")}


def test_a_reclaimed_run_not_yet_resumed_holds_its_session() -> None:
    assert held_elsewhere({WEB: LaneRuns(orphan=run("42"))}, THREAD) == {("corp", "42")}


def test_a_memory_flush_turn_holds_its_session() -> None:
    assert held_elsewhere({}, WEB, {THREAD: ("corp", "42")}) == {("corp", "42")}
    assert held_elsewhere({}, THREAD, {THREAD: ("corp", "42")}) == set()


def test_an_idle_lane_holds_nothing() -> None:
    assert held_elsewhere({THREAD: LaneRuns(active=True)}, WEB) == set()
