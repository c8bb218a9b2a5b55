"""Agent actions (issue 15): each action a run's output asks for, applied exactly once with its effect.

The gateway decides what an action does (:mod:`kanmon.gateway.actions`); the store applies it in **one** transaction
with a row of ``run_actions`` keyed ``(run_id, output_index, action_index)``: when that row exists the action was
applied before (a reclaimed run replays its output from the start) and nothing is done again. The effect is any of:
an outbound message (a ``send``), a new task (a ``schedule``), a task ended (a ``cancel_task``), and a system message
for the agent's folder's next prompt (a ``list_tasks`` answer, a refusal, a confirmation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from kanmon.store.appends import insert_new, lock_appends
from kanmon.store.base import StoreBase, from_row, from_rows
from kanmon.store.records import Message, NewMessage
from kanmon.store.tables import registered_groups, run_actions, system_messages, tasks
from kanmon.store.tasks import NewTask, Task
from kanmon.store.text import storable

__all__ = ["ActionApplied", "ActionEffect", "ActionStore", "RunAction", "TaskCancel", "refusal_line"]

#: The ``{task}`` in an effect's note (its first) is replaced by the id of the task it created.
TASK_PLACEHOLDER = "{task}"


def refusal_line(output_index: int, action_index: int, kind: str, reason: str) -> str:
    """How a refused action is told, in the run log and in the agent's next prompt:
    ``action 0.1 (schedule) refused: <reason>``."""
    return f"action {output_index}.{action_index} ({kind}) refused: {reason}"


@dataclass(frozen=True, slots=True)
class TaskCancel:
    """End task ``task_id`` (status ``done`` with ``reason``) if it is active or paused and, when ``folder`` is not
    None, belongs to ``folder``."""

    task_id: int
    folder: str | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class ActionEffect:
    """One action of a run's output and what applying it does; ``note`` goes to ``folder``'s next prompt (system
    message, origin ``gateway``, event ``action``), with ``{task}`` replaced by the id of the task ``task`` made."""

    run_id: str
    output_index: int
    action_index: int
    folder: str
    kind: str
    outcome: Literal["done", "refused"]
    detail: str
    message: NewMessage | None = None
    task: NewTask | None = None
    cancel: TaskCancel | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ActionApplied:
    """What :meth:`ActionStore.apply_action` did: ``applied`` False when the action was applied before (nothing was
    done); the messages it stored, the task it created, and the ``outcome`` and ``detail`` recorded, which are the
    effect's unless the store refused it (a task for a group no longer registered)."""

    applied: bool
    messages: list[Message] = field(default_factory=list)
    task: Task | None = None
    outcome: Literal["done", "refused"] = "done"
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class RunAction:
    """A row of ``run_actions``: an action applied (or refused), for the run log."""

    run_id: str
    output_index: int
    action_index: int
    group_folder: str
    kind: str
    outcome: str
    detail: str
    created_at: dt.datetime


class ActionStore(StoreBase):
    """``run_actions``, and the effects they record."""

    def apply_action(self, effect: ActionEffect, *, now: dt.datetime) -> ActionApplied:
        """Apply ``effect`` unless its ``(run_id, output_index, action_index)`` was applied before, in one fenced
        transaction. A task for a group no longer registered (removed since the action was decided) is not created:
        the action is recorded, noted and returned as refused, saying why (:func:`refusal_line`)."""
        with self._write(fenced=True) as conn:
            lock_appends(conn)  # PostgreSQL: two gateds replaying one run apply it one after the other
            if _done(conn, effect.run_id, effect.output_index, effect.action_index):
                return ActionApplied(False)
            stored = insert_new(conn, [effect.message], now) if effect.message is not None else []
            task = _add_task(conn, effect.task) if effect.task is not None else None
            if effect.cancel is not None:
                _cancel(conn, effect.cancel)
            outcome, detail, note = effect.outcome, effect.detail, effect.note
            if effect.task is not None and task is None:  # the note was the success's, with no task id to fill
                why = f"group {effect.task.group_folder} is not registered"
                outcome, detail = "refused", refusal_line(effect.output_index, effect.action_index, effect.kind, why)
                note = detail
            elif note is not None and task is not None:
                note = note.replace(TASK_PLACEHOLDER, str(task.id), 1)
            if note is not None and _registered(conn, effect.folder):
                values = {"group_folder": effect.folder, "origin": "gateway", "event": "action", "body": storable(note)}
                conn.execute(system_messages.insert().values(**values, created_at=now))
            conn.execute(
                run_actions.insert().values(
                    run_id=effect.run_id, output_index=effect.output_index, action_index=effect.action_index,
                    group_folder=effect.folder, kind=effect.kind, outcome=outcome, detail=storable(detail),
                    created_at=now,
                )
            )  # fmt: skip
            return ActionApplied(True, stored, task, outcome, detail)

    def action_done(self, run_id: str, output_index: int, action_index: int) -> bool:
        """True when this action of this run was applied (or refused) before."""
        with self._read() as conn:
            return _done(conn, run_id, output_index, action_index)

    def run_actions(self, run_id: str) -> list[RunAction]:
        """The actions of run ``run_id``, in output and action order."""
        query = (
            select(run_actions)
            .where(run_actions.c.run_id == run_id)
            .order_by(run_actions.c.output_index, run_actions.c.action_index)
        )
        with self._read() as conn:
            return from_rows(RunAction, conn.execute(query))


def _done(conn: Connection, run_id: str, output_index: int, action_index: int) -> bool:
    query = select(run_actions.c.run_id).where(
        run_actions.c.run_id == run_id,
        run_actions.c.output_index == output_index,
        run_actions.c.action_index == action_index,
    )
    return conn.execute(query).first() is not None


def _registered(conn: Connection, folder: str) -> bool:
    found = select(registered_groups.c.folder).where(registered_groups.c.folder == folder)
    return conn.execute(found).first() is not None


def _add_task(conn: Connection, new: NewTask) -> Task | None:
    if not _registered(conn, new.group_folder):
        return None
    values: dict[str, Any] = {name: getattr(new, name) for name in NewTask.__dataclass_fields__}
    values.update(prompt=storable(new.prompt), topic=storable(new.topic))
    row = conn.execute(tasks.insert().values(**values, status="active").returning(*tasks.c)).one()
    return from_row(Task, row)


def _cancel(conn: Connection, cancel: TaskCancel) -> None:
    condition = [tasks.c.id == cancel.task_id, tasks.c.status.in_(["active", "paused"])]
    if cancel.folder is not None:
        condition.append(tasks.c.group_folder == cancel.folder)
    conn.execute(update(tasks).where(*condition).values(status="done", next_fire_at=None, reason=cancel.reason))
