"""An agent's schedule for a group removed between the decision and the store (kanmon.gateway.actions): the run log
and the agent's next prompt say it was refused and why, never ``Task {task} scheduled``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kanmon.clock import FakeClock
from kanmon.container.actions import ScheduleAction
from kanmon.container.events import Output
from kanmon.gateway import actions as actions_module
from kanmon.gateway.actions import AgentActions
from kanmon.gateway.prompt import Batch
from kanmon.store import Group, LaneHead, Store
from kanmon.store.aio import AsyncStore

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


async def test_a_schedule_for_a_group_removed_meanwhile_is_a_refusal_in_the_run_log_and_the_next_prompt(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_group(Group(folder="corp"))
    store.add_group(Group(folder="ops"))
    decide = actions_module.decide

    def decide_then_remove(*args: Any, **kwargs: Any) -> Any:
        effect = decide(*args, **kwargs)  # checked while ops was registered: a task of ops, noted as scheduled
        store.remove_group("ops")  # `gated group rm ops` lands before the effect is stored
        return effect

    monkeypatch.setattr(actions_module, "decide", decide_then_remove)
    db = AsyncStore(store, clock=FakeClock(wall_start=T0))
    ticks: list[int] = []
    acting = AgentActions(db, clock=db.clock, on_tasks=lambda: ticks.append(1))
    schedule = ScheduleAction(kind="every", expression="1h", prompt="ping", folder="ops")
    output = Output(index=0, status="ok", result="ok", text="ok", actions=(schedule,))
    try:
        problems = await acting(Batch(LaneHead("corp", "web:corp", "", None, 1, 1), []), "r1", output)
    finally:
        db.close()
    line = "action 0.0 (schedule) refused: group ops is not registered"
    assert problems == [line]
    assert [note.body for note in store.system_messages_for("corp")] == [line]
    assert store.list_tasks() == [] and ticks == []  # no task made: the scheduler has nothing to look at
