"""Scheduled tasks in the store (issue 15): firing stores each occurrence once and moves the task on in one
transaction, on every backend."""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.store import Group, NewMessage, NewTask, NotFound, Store, Task

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def add(store: Store, *, folder: str = "corp", at: dt.datetime = T0, **fields: str) -> Task:
    new = NewTask(
        group_folder=folder,
        chat_jid=f"web:{folder}",
        prompt="summarise the inbox",
        kind="cron",
        expression="0 * * * *",
        next_fire_at=at,
        created_at=T0 - HOUR,
        **fields,  # type: ignore[arg-type]
    )
    return store.add_task(new)


def occurrence(task: Task, instant: dt.datetime) -> NewMessage:
    stamp = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    return NewMessage(
        chat_jid=task.chat_jid, id=f"task:{task.id}:{stamp}", content=task.prompt, timestamp=instant, origin="scheduler"
    )


@pytest.fixture
def corp(store: Store) -> Store:
    store.add_group(Group(folder="corp"))
    return store


def test_a_task_is_stored_and_listed(corp: Store) -> None:
    task = add(corp, topic="daily", timezone="Europe/Berlin", missed="all", created_by="run-1")
    assert (task.status, task.topic, task.timezone, task.missed, task.created_by) == (
        "active", "daily", "Europe/Berlin", "all", "run-1"
    )  # fmt: skip
    assert task.next_fire_at == T0 and task.last_fire_at is None and task.fire_count == 0
    assert corp.get_task(task.id) == task
    assert corp.list_tasks() == [task] == corp.list_tasks("corp") == corp.list_tasks(statuses=["active"])
    assert corp.list_tasks("other") == [] == corp.list_tasks(statuses=["paused"])
    assert corp.get_task(task.id + 1) is None


def test_a_task_of_an_unknown_group_is_refused(store: Store) -> None:
    with pytest.raises(NotFound, match="no group 'ghost'"):
        add(store, folder="ghost")
    assert store.list_tasks() == []


def test_due_tasks_and_the_next_fire_time(corp: Store) -> None:
    later = add(corp, at=T0 + HOUR)
    sooner = add(corp, at=T0)
    paused = add(corp, at=T0 - HOUR)
    corp.set_task_status(paused.id, "paused", next_fire_at=None)
    assert corp.next_fire_time() == T0
    assert [task.id for task in corp.due_tasks(T0)] == [sooner.id]
    assert [task.id for task in corp.due_tasks(T0 + HOUR)] == [sooner.id, later.id]
    assert [task.id for task in corp.upcoming_tasks(1)] == [sooner.id]
    assert corp.due_tasks(T0 - dt.timedelta(seconds=1)) == []


def test_firing_stores_the_occurrence_and_moves_on_in_one_go(corp: Store) -> None:
    task = add(corp)
    fired = corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=T0 + HOUR, now=T0)
    assert fired.stored == 1 and not fired.stale
    assert fired.task is not None and fired.task.next_fire_at == T0 + HOUR and fired.task.last_fire_at == T0
    assert fired.task.fire_count == 1
    stored = corp.get_message(task.chat_jid, f"task:{task.id}:2026-11-30T09:00:00Z")
    assert stored is not None and stored.origin == "scheduler" and stored.status == "new"


def test_firing_again_from_the_same_due_time_is_stale_and_stores_nothing(corp: Store) -> None:
    task = add(corp)
    corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=T0 + HOUR, now=T0)
    again = corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=T0 + HOUR, now=T0)
    assert again.stale and again.stored == 0
    assert corp.max_seq() == 1


def test_an_occurrence_stored_before_a_crash_is_not_stored_again(corp: Store) -> None:
    """The message went in but the task still says it is due (a restore, or a write of an older kanmon): firing
    from the old next_fire_at moves the task on and stores nothing twice."""
    task = add(corp)
    corp.put_message(occurrence(task, T0))
    fired = corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=T0 + HOUR, now=T0)
    assert fired.stored == 0 and not fired.stale
    assert fired.task is not None and fired.task.next_fire_at == T0 + HOUR and fired.task.fire_count == 0
    assert corp.max_seq() == 1


def test_a_paused_task_does_not_fire(corp: Store) -> None:
    task = add(corp)
    corp.set_task_status(task.id, "paused", next_fire_at=None)
    fired = corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=T0 + HOUR, now=T0)
    assert fired.stale and corp.max_seq() == 0


def test_the_last_occurrence_makes_the_task_done(corp: Store) -> None:
    task = add(corp)
    fired = corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=None, now=T0)
    assert fired.task is not None and fired.task.status == "done" and fired.task.next_fire_at is None
    assert fired.task.reason == "no further occurrence"


def test_several_missed_occurrences_in_one_go(corp: Store) -> None:
    task = add(corp)
    instants = [T0, T0 + HOUR, T0 + 2 * HOUR]
    fired = corp.fire_task(
        task.id, due_at=T0, messages=[occurrence(task, at) for at in instants], next_fire_at=T0 + 3 * HOUR, now=T0
    )
    assert fired.stored == 3 and fired.task is not None and fired.task.last_fire_at == T0 + 2 * HOUR


def test_run_now_adds_an_occurrence_and_keeps_the_schedule(corp: Store) -> None:
    task = add(corp)
    message = NewMessage(chat_jid=task.chat_jid, id=f"task:{task.id}:manual:x", content="p", timestamp=T0 - HOUR)
    fired = corp.fire_task_now(task.id, message, now=T0)
    assert fired.stored == 1 and fired.task is not None and fired.task.next_fire_at == T0
    assert corp.fire_task_now(task.id, message, now=T0).stored == 0
    with pytest.raises(NotFound):
        corp.fire_task_now(task.id + 1, message, now=T0)


def test_status_changes_obey_their_conditions(corp: Store) -> None:
    task = add(corp)
    # only a paused task resumes
    same = corp.set_task_status(task.id, "active", next_fire_at=T0 + HOUR, only_from=["paused"])
    assert same is not None and same.next_fire_at == T0
    paused = corp.set_task_status(task.id, "paused", next_fire_at=None, only_from=["active"])
    assert paused is not None and paused.status == "paused" and paused.next_fire_at is None
    # another group's chat cannot touch it
    assert corp.set_task_status(task.id, "done", next_fire_at=None, folder="other") is None
    done = corp.set_task_status(task.id, "done", next_fire_at=None, reason="cancelled", folder="corp")
    assert done is not None and done.status == "done" and done.reason == "cancelled"
    assert corp.set_task_status(task.id + 1, "done", next_fire_at=None) is None


def test_a_removed_task_is_gone_and_its_messages_stay(corp: Store) -> None:
    task = add(corp)
    corp.fire_task(task.id, due_at=T0, messages=[occurrence(task, T0)], next_fire_at=T0 + HOUR, now=T0)
    assert corp.remove_task(task.id) and not corp.remove_task(task.id)
    assert corp.get_task(task.id) is None and corp.max_seq() == 1


def test_a_prompt_is_stored_as_storable_text(corp: Store) -> None:
    task = add(corp, topic="a\x00b")
    assert corp.get_task(task.id) == task and task.topic == "a\ufffdb"
