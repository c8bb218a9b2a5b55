"""The daily budget check (issue 16 item 4) on a real store of every backend, with the injected clock: a group is
held once its usage of its own day reaches the budget, each waiting chat is told once, and it runs again on its next
day, or at once when the budget is raised or removed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from kanmon.clock import FakeClock
from kanmon.gateway.budget import DailyBudget, notice_id
from kanmon.queue import Lane
from kanmon.store import Dispatch, Group, Message, NewMessage, Store, UsageEntry
from kanmon.store.aio import AsyncStore

# 22:30 in Berlin (UTC+1 in winter): 1 h 30 min before the group's day ends, 2 h 30 min before UTC's does
START = dt.datetime(2026, 11, 30, 21, 30, tzinfo=dt.UTC)
CORP = Group(folder="corp", container_config={"daily_budget": 1.0, "timezone": "Europe/Berlin"})
LANE = Lane("corp")


@pytest.fixture
async def world(store: Store) -> AsyncIterator[tuple[DailyBudget, FakeClock, AsyncStore, list[Message]]]:
    store.add_group(CORP)
    clock = FakeClock(wall_start=START)
    db = AsyncStore(store, clock=clock)
    told: list[Message] = []
    yield DailyBudget(db, "UTC", clock, told.extend), clock, db, told
    db.close()


def spend(store: Store, run: str, day: str, cost: float) -> None:
    store.record_usage([UsageEntry(
        run_id=run, output_index=0, group_folder="corp", topic="", chat_jid="telegram:1", session_id=None, day=day,
        recorded_at=START, cost_usd=cost,
    )])  # fmt: skip


def waiting(store: Store, chat: str) -> None:
    seq = store.put_message(NewMessage(chat_jid=chat, content="hi", sender="alice")).message.seq
    store.record_dispatch([Dispatch(seq, "new", "corp", "", None)], seq)


async def test_crossing_the_budget_mid_day_holds_until_the_groups_next_day(
    world: tuple[DailyBudget, FakeClock, AsyncStore, list[Message]], store: Store
) -> None:
    budget, clock, _, told = world
    waiting(store, "telegram:1")
    spend(store, "r1", "2026-11-30", 0.6)
    assert not await budget.holds(CORP, LANE)  # $0.60 of $1.00
    spend(store, "r2", "2026-11-30", 0.6)  # a run that started under the budget ends over it
    assert await budget.holds(CORP, LANE)
    waiting(store, "telegram:2")
    assert await budget.holds(CORP, LANE) and await budget.holds(CORP, LANE)
    assert sorted(m.chat_jid for m in told) == ["telegram:1", "telegram:2"]  # each waiting chat once
    assert {m.id for m in told} == {notice_id("corp", "2026-11-30")}
    assert "$1.00 is spent ($1.20 on 2026-11-30)" in told[0].content and "Europe/Berlin" in told[0].content

    clock.advance(80 * 60)  # 23:50 in Berlin: still its 30 November
    assert await budget.holds(CORP, LANE)
    clock.advance(20 * 60)  # 00:10 on 1 December in Berlin (23:10 UTC: UTC's day has not turned)
    assert not await budget.holds(CORP, LANE)
    assert len(told) == 2


async def test_raising_or_removing_the_budget_lifts_the_hold_at_once_and_a_new_gated_tells_no_one_twice(
    world: tuple[DailyBudget, FakeClock, AsyncStore, list[Message]], store: Store
) -> None:
    budget, clock, db, told = world
    waiting(store, "telegram:1")
    spend(store, "r1", "2026-11-30", 1.0)
    assert await budget.holds(CORP, LANE) and len(told) == 1
    raised = dataclasses.replace(CORP, container_config={**CORP.container_config, "daily_budget": 2.5})
    assert not await budget.holds(raised, LANE)
    assert not await budget.holds(dataclasses.replace(CORP, container_config={}), LANE)
    assert await budget.holds(CORP, LANE)
    restarted: list[Message] = []
    assert await DailyBudget(db, "UTC", clock, restarted.extend).holds(CORP, LANE)
    assert restarted == []  # the notice is in the store already


async def test_a_group_without_a_zone_counts_its_days_in_the_default_zone(
    world: tuple[DailyBudget, FakeClock, AsyncStore, list[Message]], store: Store
) -> None:
    _, clock, db, _ = world
    plain = Group(folder="corp", container_config={"daily_budget": 1.0})
    spend(store, "r1", "2026-12-01", 1.0)  # recorded on Tokyo's 1 December
    assert await DailyBudget(db, "Asia/Tokyo", clock, lambda rows: None).holds(plain, LANE)
    assert not await DailyBudget(db, "UTC", clock, lambda rows: None).holds(plain, LANE)
