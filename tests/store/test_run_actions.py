"""Agent actions in the store (issue 15): each action's effect is applied once by ``(run_id, output_index,
action_index)``, however often a replayed run asks, on every backend."""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.store import ActionEffect, Group, NewMessage, NewTask, Store, TaskCancel

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def corp(store: Store) -> Store:
    store.add_group(Group(folder="corp"))
    return store


def new_task(run_id: str = "r1") -> NewTask:
    return NewTask(
        group_folder="corp", chat_jid="web:corp", prompt="remind me", kind="every", expression="3600",
        next_fire_at=T0 + dt.timedelta(hours=1), created_at=T0, created_by=run_id,
    )  # fmt: skip


def effect(index: int = 0, **fields: object) -> ActionEffect:
    values: dict[str, object] = {
        "run_id": "r1", "output_index": 0, "action_index": index, "folder": "corp", "kind": "schedule",
        "outcome": "done", "detail": "scheduled",
    }  # fmt: skip
    values.update(fields)
    return ActionEffect(**values)  # type: ignore[arg-type]


def test_a_scheduled_task_is_created_once_however_often_its_action_is_applied(corp: Store) -> None:
    first = corp.apply_action(effect(task=new_task(), note="task {task} scheduled"), now=T0)
    again = corp.apply_action(effect(task=new_task(), note="task {task} scheduled"), now=T0)
    assert first.applied and not again.applied
    [task] = corp.list_tasks("corp")
    assert first.task is not None and first.task.id == task.id and task.created_by == "r1"
    assert [note.body for note in corp.system_messages_for("corp")] == [f"task {task.id} scheduled"]
    assert [(row.run_id, row.output_index, row.action_index, row.outcome) for row in corp.run_actions("r1")] == [
        ("r1", 0, 0, "done")
    ]


def test_a_sent_message_is_stored_once_in_its_chat(corp: Store) -> None:
    message = NewMessage(chat_jid="web:corp", id="run-r1-0-a0", content="hello", direction="out", origin="gateway")
    first = corp.apply_action(effect(kind="send", message=message), now=T0)
    again = corp.apply_action(effect(kind="send", message=message), now=T0)
    assert [row.content for row in first.messages] == ["hello"] and again.messages == []
    assert [row.id for row in corp.new_messages(0) if row.chat_jid == "web:corp"] == ["run-r1-0-a0"]


def test_a_refusal_is_noted_once_and_a_cancel_applies_once(corp: Store) -> None:
    task = corp.add_task(new_task("operator"))
    refused = effect(0, kind="send", outcome="refused", detail="no", note="refused: no")
    cancel = effect(1, kind="cancel_task", cancel=TaskCancel(task.id, "corp", "cancelled by run r1"), note="ok")
    for _ in range(2):
        corp.apply_action(refused, now=T0)
        corp.apply_action(cancel, now=T0)
    assert [note.body for note in corp.system_messages_for("corp")] == ["refused: no", "ok"]
    after = corp.get_task(task.id)
    assert after is not None and (after.status, after.reason, after.next_fire_at) == (
        "done",
        "cancelled by run r1",
        None,
    )
    assert corp.action_done("r1", 0, 1) and not corp.action_done("r1", 0, 2)


def test_a_cancel_does_not_touch_another_folders_task(corp: Store) -> None:
    corp.add_group(Group(folder="other"))
    task = corp.add_task(new_task("operator"))
    corp.apply_action(effect(kind="cancel_task", folder="other", cancel=TaskCancel(task.id, "other", "x")), now=T0)
    after = corp.get_task(task.id)
    assert after is not None and after.status == "active"


def test_a_task_whose_group_went_before_it_was_stored_is_a_refusal_with_no_placeholder_left(corp: Store) -> None:
    """A root group schedules for another group, which is removed between the decision and the store: the note for
    the agent said ``Task {task} scheduled by your run …``, the placeholder never filled and the schedule never
    made; the action is a refusal, and the caller is told so (an outside review)."""
    note = "Task {task} scheduled by your run r1: every 3600 → web:gone."
    gone = NewTask(
        group_folder="gone", chat_jid="web:gone", prompt="remind me", kind="every", expression="3600",
        next_fire_at=T0 + dt.timedelta(hours=1), created_at=T0, created_by="r1",
    )  # fmt: skip
    applied = corp.apply_action(effect(task=gone, note=note, detail="scheduled a task of gone"), now=T0)
    line = "action 0.0 (schedule) refused: group gone is not registered"
    assert (applied.applied, applied.task, applied.outcome, applied.detail) == (True, None, "refused", line)
    assert [note.body for note in corp.system_messages_for("corp")] == [line]
    assert [(row.outcome, row.detail) for row in corp.run_actions("r1")] == [("refused", line)]
    assert corp.list_tasks() == []


def test_only_the_placeholder_takes_the_task_id(corp: Store) -> None:
    applied = corp.apply_action(effect(task=new_task(), note="Task {task} says '{task}'"), now=T0)
    assert applied.task is not None and applied.outcome == "done"
    assert [note.body for note in corp.system_messages_for("corp")] == [f"Task {applied.task.id} says '{{task}}'"]
