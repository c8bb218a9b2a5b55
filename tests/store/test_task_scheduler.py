"""The scheduler on every backend (issue 15), driven by an injected clock: each kind fires on time, missed
occurrences follow the task's policy, a crash or a second scheduler never stores an occurrence twice, a fenced
scheduler stores nothing, a task whose group is gone fails with the reason, and one whose chat its group does not
own at the time skips that firing and stays active."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from kanmon.clock import FakeClock
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.gateway.schedule import parse_schedule
from kanmon.gateway.scheduler import SchedulerConfig, TaskScheduler, occurrence_message
from kanmon.store import Group, Message, NewTask, Store, StoreFenced, Task
from kanmon.store.aio import AsyncStore

T0 = dt.datetime(2027, 3, 27, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


class World:
    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.store, self.clock = store, clock
        self.db = AsyncStore(store, clock=clock)
        self.metrics = GatewayMetrics()
        self.woken = 0
        self.scheduler = self.make()

    def make(self) -> TaskScheduler:
        def woke() -> None:
            self.woken += 1

        config = SchedulerConfig(interval=5.0, grace=60.0, catch_up=10)
        return TaskScheduler(
            self.db, Registry(self.store), config, clock=self.clock, metrics=self.metrics, on_stored=woke
        )

    def add(self, kind: str, text: str, *, zone: str = "UTC", missed: str = "latest", folder: str = "corp") -> Task:
        schedule, first = parse_schedule(kind, text, zone=zone, now=self.clock.now())  # type: ignore[arg-type]
        new = NewTask(
            group_folder=folder, chat_jid=f"web:{folder}", prompt=f"do {text}", kind=schedule.kind,
            expression=schedule.expression, timezone=zone, missed=missed, next_fire_at=first,  # type: ignore[arg-type]
            created_at=schedule.anchor or self.clock.now(),
        )  # fmt: skip
        return self.store.add_task(new)

    async def at(self, when: dt.datetime) -> float:
        """Move the clock to ``when`` and tick once; returns the scheduler's wait."""
        self.clock.advance((when - self.clock.now()).total_seconds())
        return await self.scheduler.tick()

    def fired(self, chat: str = "web:corp") -> list[Message]:
        return [row for row in self.store.new_messages(0, 100_000) if row.chat_jid == chat and row.direction == "in"]

    def count(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(f"kanmon_task_{name}_total")
        return value or 0.0


@pytest.fixture
async def world(store: Store) -> AsyncIterator[World]:
    store.add_group(Group(folder="corp"))
    w = World(store, FakeClock(wall_start=T0))
    yield w
    w.db.close()


def stamps(rows: list[Message]) -> list[str]:
    return [row.id.split(":", 2)[2] for row in rows]


async def test_a_cron_task_fires_at_its_minute_with_the_occurrence_as_its_id(world: World) -> None:
    task = world.add("cron", "30 10 * * *", zone="Europe/Berlin")  # 09:30 UTC
    assert await world.at(T0 + dt.timedelta(minutes=29)) == 5.0  # nothing due: look again after the interval
    assert world.fired() == []
    assert await world.at(T0 + dt.timedelta(minutes=29, seconds=58)) == 2.0  # the next fire comes sooner
    await world.at(T0 + dt.timedelta(minutes=30))
    [row] = world.fired()
    assert row.id == f"task:{task.id}:2027-03-27T09:30:00Z"
    assert (row.content, row.verb, row.origin, row.sender, row.is_bot_message) == (
        "do 30 10 * * *", "task", "scheduler", f"task:{task.id}", True
    )  # fmt: skip
    assert world.woken == 1 and world.count("fires") == 1
    # the next day, DST has begun in Berlin: 10:30 CEST is 08:30 UTC
    again = world.store.get_task(task.id)
    assert again is not None and again.next_fire_at == dt.datetime(2027, 3, 28, 8, 30, tzinfo=dt.UTC)
    assert again.last_fire_at == T0 + dt.timedelta(minutes=30) and again.fire_count == 1


async def test_an_interval_task_fires_every_period(world: World) -> None:
    task = world.add("every", "15m")
    for minutes in (10, 15, 20, 30, 44, 45):
        await world.at(T0 + dt.timedelta(minutes=minutes))
    assert stamps(world.fired()) == ["2027-03-27T09:15:00Z", "2027-03-27T09:30:00Z", "2027-03-27T09:45:00Z"]
    assert world.store.get_task(task.id).fire_count == 3  # type: ignore[union-attr]


async def test_a_one_shot_task_fires_once_and_is_done(world: World) -> None:
    task = world.add("at", "+2h")
    await world.at(T0 + 2 * HOUR + dt.timedelta(seconds=1))
    await world.at(T0 + 5 * HOUR)
    assert stamps(world.fired()) == ["2027-03-27T11:00:00Z"]
    done = world.store.get_task(task.id)
    assert done is not None and done.status == "done" and done.next_fire_at is None


@pytest.mark.parametrize(
    ("policy", "expected", "skips"),
    [
        ("latest", ["2027-03-27T12:00:00Z"], 2),
        ("skip", [], 3),
        ("all", ["2027-03-27T10:00:00Z", "2027-03-27T11:00:00Z", "2027-03-27T12:00:00Z"], 0),
    ],
)
async def test_three_periods_of_downtime(world: World, policy: str, expected: list[str], skips: int) -> None:
    task = world.add("cron", "0 * * * *", missed=policy)
    await world.at(T0 + 3 * HOUR + dt.timedelta(minutes=20))  # gated was away for 10:00, 11:00 and 12:00
    assert stamps(world.fired()) == expected and world.count("skips") == skips
    await world.at(T0 + 4 * HOUR)  # and then on time again
    assert stamps(world.fired()) == [*expected, "2027-03-27T13:00:00Z"]
    assert world.store.get_task(task.id).next_fire_at == T0 + 5 * HOUR  # type: ignore[union-attr]


async def test_an_occurrence_stored_before_a_crash_is_not_stored_again(world: World) -> None:
    """gated stored the occurrence and died before the task moved on (or a backup was restored between the two):
    the next scheduler fires from the old next_fire_at and the message is not stored twice."""
    task = world.add("cron", "0 10 * * *")
    world.store.put_message(occurrence_message(task, T0 + HOUR))  # what the dead gated left
    restarted = world.make()
    world.clock.advance(3600)
    await restarted.tick()
    assert stamps(world.fired()) == ["2027-03-27T10:00:00Z"]
    moved = world.store.get_task(task.id)
    assert moved is not None and moved.next_fire_at == T0 + 25 * HOUR


async def test_a_clock_set_back_fires_no_occurrence_again(world: World) -> None:
    task = world.add("cron", "0 10 * * *")
    await world.at(T0 + HOUR)  # 10:00 fired
    # gated restarts on a machine whose clock is 40 minutes behind, and lives through 10:00 again
    behind = World(world.store, FakeClock(wall_start=T0 + dt.timedelta(minutes=20)))
    try:
        for minutes in (30, 40, 45):
            await behind.at(T0 + dt.timedelta(minutes=minutes))
        await behind.at(T0 + HOUR + dt.timedelta(minutes=5))
        assert stamps(world.fired()) == ["2027-03-27T10:00:00Z"]
        assert world.store.get_task(task.id).fire_count == 1  # type: ignore[union-attr]
        await behind.at(T0 + 25 * HOUR)  # and the next day's occurrence comes as usual
        assert stamps(world.fired()) == ["2027-03-27T10:00:00Z", "2027-03-28T10:00:00Z"]
    finally:
        behind.db.close()


async def test_two_schedulers_on_one_store_fire_each_occurrence_once(world: World) -> None:
    for minute in range(20):
        world.add("cron", f"{minute} * * * *")
    other = World(world.store, world.clock)  # a second gated on the same store: its own threads and registry
    try:
        for _ in range(1, 40):
            world.clock.advance(60 * 3)
            await asyncio.gather(world.scheduler.tick(), other.scheduler.tick())
        ids = [row.id for row in world.fired()]
        assert len(ids) == len(set(ids)) == sum(task.fire_count for task in world.store.list_tasks())
        assert len(ids) == 19 + 20  # 09:01 … 09:19 (09:00 was the start) and 10:00 … 10:19
    finally:
        other.db.close()


async def test_a_fenced_scheduler_stores_nothing(world: World) -> None:
    world.add("cron", "0 10 * * *")
    world.store.fence = world.store.take_epoch()
    Store(world.store.engine).take_epoch()  # another gated took the store
    world.clock.advance(3600)
    with pytest.raises(StoreFenced):
        await world.scheduler.tick()
    assert world.fired() == []


async def test_a_task_whose_group_is_gone_fails_with_the_reason(world: World) -> None:
    world.store.add_group(Group(folder="gone"))
    task = world.add("cron", "0 10 * * *", folder="gone")
    world.store.remove_group("gone")
    await world.at(T0 + HOUR)
    failed = world.store.get_task(task.id)
    assert failed is not None and failed.status == "failed" and failed.next_fire_at is None
    assert failed.reason == "group gone is not registered"
    assert world.fired("web:gone") == [] and world.count("failures") == 1
    await world.at(T0 + 2 * HOUR)
    assert world.count("failures") == 1  # not retried


def telegram_task(world: World, kind: str = "cron", text: str = "0 10 * * *") -> tuple[Task, int]:
    """A task of corp into telegram:1, a chat corp owns through a route; the task and the route's id."""
    route = world.store.add_route(seq=1, match="chat_jid=telegram:1", target="corp")
    schedule, first = parse_schedule(kind, text, zone="UTC", now=T0)  # type: ignore[arg-type]
    task = world.store.add_task(
        NewTask(group_folder="corp", chat_jid="telegram:1", prompt="p", kind=schedule.kind,
                expression=schedule.expression, next_fire_at=first, created_at=T0)
    )  # fmt: skip
    return task, route.id


async def test_a_firing_while_the_chat_has_no_owner_is_skipped_and_the_task_fires_again_once_it_has(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A route is edited by removing it and adding it again (`gated route` has no edit): a daily task due in between
    used to fail for good (a failed task cannot be resumed). The firing is skipped, saying why, and the task stays
    active for its next occurrence (an outside review)."""
    task, route = telegram_task(world)
    world.store.remove_route(route)
    await world.at(T0 + HOUR)  # 10:00, no route: nobody owns telegram:1
    skipped = world.store.get_task(task.id)
    assert skipped is not None and skipped.status == "active" and skipped.next_fire_at == T0 + 25 * HOUR
    assert world.fired("telegram:1") == [] and (world.count("skips"), world.count("failures")) == (1, 0)
    [line] = [r.getMessage() for r in caplog.records if r.name == "kanmon.gateway.scheduler" and "skipped" in r.message]
    assert "chat telegram:1 does not belong to corp: no folder route matches" in line and "stays active" in line
    world.store.add_route(seq=1, match="chat_jid=telegram:1", target="corp")
    await world.at(T0 + 25 * HOUR)
    assert stamps(world.fired("telegram:1")) == ["2027-03-28T10:00:00Z"]


async def test_a_task_whose_chat_went_to_another_group_skips_its_firings_and_never_runs_for_that_group(
    world: World,
) -> None:
    world.store.add_group(Group(folder="other"))
    task, route = telegram_task(world)
    world.store.remove_route(route)
    world.store.add_route(seq=1, match="chat_jid=telegram:1", target="other")
    for day in range(3):
        await world.at(T0 + HOUR + day * 24 * HOUR)
    kept = world.store.get_task(task.id)
    assert kept is not None and kept.status == "active" and kept.next_fire_at == T0 + 73 * HOUR
    assert world.fired("telegram:1") == [] and world.count("skips") == 3


async def test_a_one_shot_task_whose_chat_has_no_owner_at_its_time_is_done_with_the_reason(world: World) -> None:
    task, route = telegram_task(world, "at", "+1h")
    world.store.remove_route(route)
    await world.at(T0 + HOUR)
    done = world.store.get_task(task.id)
    assert done is not None and (done.status, done.next_fire_at) == ("done", None)
    assert done.reason is not None and done.reason.startswith("its occurrence was skipped: chat telegram:1 does not")
    assert world.fired("telegram:1") == [] and world.count("skips") == 1


async def test_the_scheduler_sleeps_until_the_next_fire_on_the_injected_clock(world: World) -> None:
    world.add("cron", "0 10 * * *")
    stopping = asyncio.Event()
    running = asyncio.create_task(world.scheduler.run(stopping))
    try:
        for _ in range(3600 // 5):
            await world.clock.wait_for_sleepers()
            world.clock.advance(5.0)
        for _ in range(200):
            if world.fired():
                break
            await asyncio.sleep(0.01)
        assert stamps(world.fired()) == ["2027-03-27T10:00:00Z"]
    finally:
        stopping.set()
        await running


async def test_a_task_added_in_process_wakes_the_scheduler_out_of_its_interval(world: World) -> None:
    # an agent action or a chat command adds a task and wakes the scheduler: it must not wait out a long interval
    world.scheduler = TaskScheduler(
        world.db, Registry(world.store), SchedulerConfig(interval=3600.0), clock=world.clock, metrics=world.metrics
    )  # fmt: skip
    stopping = asyncio.Event()
    running = asyncio.create_task(world.scheduler.run(stopping))
    try:
        await world.clock.wait_for_sleepers()
        assert world.clock.sleeping == [3600.0]  # nothing to fire: the next look is an interval away
        world.add("at", "+30s")
        world.scheduler.wake()
        for _ in range(500):  # woken, it sleeps until the new task is due instead
            if world.clock.sleeping == [30.0]:
                break
            await asyncio.sleep(0.01)
        assert world.clock.sleeping == [30.0]
        world.clock.advance(30.0)
        for _ in range(500):
            if world.fired():
                break
            await asyncio.sleep(0.01)
        assert stamps(world.fired()) == ["2027-03-27T09:00:30Z"]
    finally:
        stopping.set()
        await running


async def test_a_missed_one_shot_task_under_skip_is_done_with_the_reason(world: World) -> None:
    task = world.add("at", "+1h", missed="skip")
    await world.at(T0 + 3 * HOUR)
    done = world.store.get_task(task.id)
    assert world.fired() == [] and world.count("skips") == 1
    assert done is not None and done.status == "done"
    assert done.reason == "its last occurrence was missed while gated was away (missed=skip)"
