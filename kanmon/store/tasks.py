"""Scheduled tasks (issue 15): the ``tasks`` table, and firing an occurrence in one transaction with its message.

The store knows nothing of cron: callers (the scheduler in ``kanmon.gateway``, the CLI) compute occurrences and next
fire times and hand over ready messages. What the store guarantees is the exactly-once part: :meth:`TaskStore.fire_task`
moves ``next_fire_at`` on and appends the occurrences' messages in **one** transaction, only if the task is still
active and still due at the time the caller saw (a task paused, changed or fired meanwhile is left alone), and each
message goes in at most once by its ``(chat_jid, id)``, whatever happened before (a crash, another gated, a restore).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection, Integer, bindparam, delete, func, select, update

from kanmon.store.appends import append_message, insert_values, lock_appends
from kanmon.store.base import StoreBase, dialect_insert, from_row, from_rows
from kanmon.store.columns import UTCDateTime
from kanmon.store.errors import NotFound
from kanmon.store.records import NewMessage
from kanmon.store.tables import messages as message_rows
from kanmon.store.tables import registered_groups, tasks
from kanmon.store.text import storable

__all__ = ["FirePlan", "Fired", "NewTask", "Task", "TaskStatus", "TaskStore"]

TaskStatus = Literal["active", "paused", "done", "failed"]


@dataclass(frozen=True, kw_only=True)
class NewTask:
    """A task to add: its group, target chat and topic, prompt, schedule (``kind``, ``expression``, ``timezone``;
    see :mod:`kanmon.gateway.schedule`), missed policy, first occurrence (aware), author and creation time."""

    group_folder: str
    chat_jid: str
    prompt: str
    kind: Literal["cron", "every", "at"]
    expression: str
    next_fire_at: dt.datetime
    created_at: dt.datetime
    topic: str = ""
    timezone: str = "UTC"
    missed: Literal["latest", "skip", "all"] = "latest"
    created_by: str = "operator"


@dataclass(frozen=True, kw_only=True)
class Task:
    """A stored task; times are aware UTC; ``next_fire_at`` is None once it is done or failed."""

    id: int
    group_folder: str
    chat_jid: str
    topic: str
    prompt: str
    kind: Literal["cron", "every", "at"]
    expression: str
    timezone: str
    missed: Literal["latest", "skip", "all"]
    status: TaskStatus
    reason: str | None
    next_fire_at: dt.datetime | None
    last_fire_at: dt.datetime | None
    fire_count: int
    created_by: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Fired:
    """What :meth:`TaskStore.fire_task` did: how many messages it stored (0 when each was there already), and the
    task as it is now; ``stale`` when the task was no longer active and due as the caller saw it (nothing done)."""

    stored: int
    task: Task | None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class FirePlan:
    """One task's firing for :meth:`TaskStore.fire_tasks`: the task, the ``next_fire_at`` it was due at, the
    occurrences' messages, and its next occurrence after them (None: done, with ``done_reason``)."""

    task_id: int
    due_at: dt.datetime
    messages: tuple[NewMessage, ...]
    next_fire_at: dt.datetime | None
    done_reason: str | None = None


class TaskStore(StoreBase):
    """``tasks``, and firing them."""

    def add_task(self, new: NewTask) -> Task:
        """Store ``new`` as an active task; raises :class:`NotFound` when its group is not registered."""
        with self._write() as conn:
            found = select(registered_groups.c.folder).where(registered_groups.c.folder == new.group_folder)
            if conn.execute(found).first() is None:
                raise NotFound(f"no group {new.group_folder!r}: add it with `gated group add {new.group_folder}`")
            values: dict[str, Any] = {name: getattr(new, name) for name in NewTask.__dataclass_fields__}
            values.update(prompt=storable(new.prompt), topic=storable(new.topic))
            row = conn.execute(tasks.insert().values(**values, status="active").returning(*tasks.c)).one()
            return from_row(Task, row)

    def get_task(self, task_id: int) -> Task | None:
        """The task ``task_id``, or None."""
        with self._read() as conn:
            return _task(conn, task_id)

    def list_tasks(self, folder: str | None = None, *, statuses: Sequence[TaskStatus] = ()) -> list[Task]:
        """Tasks (of ``folder`` when given, of these ``statuses`` when given), by id."""
        query = select(tasks).order_by(tasks.c.id)
        if folder is not None:
            query = query.where(tasks.c.group_folder == folder)
        if statuses:
            query = query.where(tasks.c.status.in_(list(statuses)))
        with self._read() as conn:
            return from_rows(Task, conn.execute(query))

    def due_tasks(self, now: dt.datetime, limit: int = 500) -> list[Task]:
        """Up to ``limit`` active tasks whose next occurrence is at or before ``now``, the most overdue first."""
        query = (
            select(tasks)
            .where(tasks.c.status == "active", tasks.c.next_fire_at <= now)
            .order_by(tasks.c.next_fire_at, tasks.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return from_rows(Task, conn.execute(query))

    def upcoming_tasks(self, limit: int = 5) -> list[Task]:
        """The next ``limit`` active tasks to fire, soonest first (``gated status``)."""
        query = (
            select(tasks)
            .where(tasks.c.status == "active", tasks.c.next_fire_at.is_not(None))
            .order_by(tasks.c.next_fire_at, tasks.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return from_rows(Task, conn.execute(query))

    def next_fire_time(self) -> dt.datetime | None:
        """The earliest ``next_fire_at`` of any active task (when the scheduler must look next), or None."""
        query = select(func.min(tasks.c.next_fire_at)).where(tasks.c.status == "active")
        with self._read() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else _aware(value)

    def fire_task(
        self,
        task_id: int,
        *,
        due_at: dt.datetime,
        messages: Sequence[NewMessage],
        next_fire_at: dt.datetime | None,
        now: dt.datetime,
        done_reason: str | None = None,
        fenced: bool = False,
    ) -> Fired:
        """In one transaction: if the task is active with ``next_fire_at == due_at``, append ``messages`` (each only
        if its ``(chat_jid, id)`` is not stored yet), set ``next_fire_at`` (None: the task is done, with
        ``done_reason``) and ``last_fire_at`` (the newest message's timestamp), and count what was stored.

        Otherwise nothing is written and the result is ``stale``. ``fenced``: gated's scheduler, which must stop
        writing once another gated holds the store (:class:`~kanmon.store.errors.StoreFenced`).
        """
        plan = FirePlan(task_id, due_at, tuple(messages), next_fire_at, done_reason)
        return self.fire_tasks([plan], now=now, fenced=fenced)[0]

    def fire_tasks(self, plans: Sequence[FirePlan], *, now: dt.datetime, fenced: bool = False) -> list[Fired]:
        """:meth:`fire_task` for each plan, all in one transaction (the scheduler fires what is due together)."""
        with self._write(fenced=fenced) as conn:
            lock_appends(conn)
            ids = list(dict.fromkeys(plan.task_id for plan in plans))
            current = _tasks_by_id(conn, ids, lock=True)  # PostgreSQL: no status change slips in between
            fresh: dict[int, FirePlan] = {}
            for plan in plans:
                task = current.get(plan.task_id)
                if task is not None and task.status == "active" and task.next_fire_at == plan.due_at:
                    fresh.setdefault(plan.task_id, plan)
            made = _insert_missing(conn, [message for plan in fresh.values() for message in plan.messages], now)
            counts = {
                task_id: sum((message.chat_jid, message.id) in made for message in plan.messages)
                for task_id, plan in fresh.items()
            }
            after = dict(current)
            if fresh:
                rows = [_fired_values(current[task_id], plan, counts[task_id]) for task_id, plan in fresh.items()]
                conn.execute(_FIRED, rows)
                for row in rows:  # the tasks as the statement left them, without reading them back
                    after[row["b_id"]] = replace(
                        current[row["b_id"]], next_fire_at=row["b_next"], last_fire_at=row["b_last"],
                        status=row["b_status"], reason=row["b_reason"],
                        fire_count=current[row["b_id"]].fire_count + row["b_count"],
                    )  # fmt: skip
            return [
                Fired(counts.get(plan.task_id, 0), after.get(plan.task_id), stale=plan.task_id not in fresh)
                for plan in plans
            ]

    def fire_task_now(self, task_id: int, message: NewMessage, *, now: dt.datetime) -> Fired:
        """Append one extra occurrence of the task (``gated task run-now``) whatever its status or schedule; its
        ``next_fire_at`` stays. Raises :class:`NotFound` for an unknown task."""
        with self._write() as conn:
            lock_appends(conn)
            if _task(conn, task_id) is None:
                raise NotFound(f"no task {task_id}")
            stored = _append(conn, task_id, [message], now)
            return Fired(stored, _task(conn, task_id))

    def set_task_status(
        self,
        task_id: int,
        status: TaskStatus,
        *,
        next_fire_at: dt.datetime | None,
        reason: str | None = None,
        only_from: Sequence[TaskStatus] = ("active", "paused", "done", "failed"),
        folder: str | None = None,
        expected_next: dt.datetime | None = None,
    ) -> Task | None:
        """Set the task's status, next occurrence and reason if its status is one of ``only_from`` (and it belongs to
        ``folder``, and is still due at ``expected_next``, when those are given); the task as it is now, or None
        when there is no such task. Compare ``status`` of the result to see whether it changed."""
        condition = [tasks.c.id == task_id, tasks.c.status.in_(list(only_from))]
        if folder is not None:
            condition.append(tasks.c.group_folder == folder)
        if expected_next is not None:
            condition.append(tasks.c.next_fire_at == expected_next)
        with self._write() as conn:
            values = {"status": status, "next_fire_at": next_fire_at, "reason": reason}
            conn.execute(update(tasks).where(*condition).values(**values))
            task = _task(conn, task_id)
            return None if task is None or (folder is not None and task.group_folder != folder) else task

    def remove_task(self, task_id: int) -> bool:
        """Delete the task; True when there was one. Its stored messages stay (they are chat history)."""
        with self._write() as conn:
            return bool(conn.execute(delete(tasks).where(tasks.c.id == task_id)).rowcount)


# One statement for every task a batch fires (executemany): the values are worked out in Python from the rows read
# at the start of the transaction, which nobody else can change meanwhile (the write lock; FOR UPDATE).
_FIRED = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"))
    .values(
        next_fire_at=bindparam("b_next", type_=UTCDateTime()),
        last_fire_at=bindparam("b_last", type_=UTCDateTime()),
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        fire_count=tasks.c.fire_count + bindparam("b_count", type_=Integer()),
    )
)


def _fired_values(task: Task, plan: FirePlan, stored: int) -> dict[str, Any]:
    instants = [message.timestamp for message in plan.messages if message.timestamp is not None]
    if task.last_fire_at is not None:
        instants.append(task.last_fire_at)
    done = plan.next_fire_at is None
    return {
        "b_id": task.id,
        "b_next": plan.next_fire_at,
        "b_last": max(instants, default=None),
        "b_status": "done" if done else task.status,
        "b_reason": (plan.done_reason or "no further occurrence") if done else task.reason,
        "b_count": stored,
    }


def _insert_missing(conn: Connection, new: Sequence[NewMessage], now: dt.datetime) -> set[tuple[str, str | None]]:
    """Insert the messages whose ``(chat_jid, id)`` is not stored yet, many per statement; their keys. Like
    :func:`~kanmon.store.appends.insert_new` without reading the rows back (a burst of thousands costs half).

    SQLite: ``INSERT … ON CONFLICT (chat_jid, id) DO NOTHING RETURNING`` the keys inserted. Its planner answers the
    ``chat_jid IN (…) AND id IN (…)`` check with one index probe per pair of the two lists (a burst of 1,000 chats ×
    5,000 ids took 5 s); PostgreSQL's answers it at once and inserts faster without RETURNING, so it keeps the check.
    """
    if not new:
        return set()
    if conn.dialect.name == "sqlite":
        values = list({(item.chat_jid, item.id): insert_values(item, now) for item in new}.values())
        return {(str(jid), str(mid)) for jid, mid in conn.execute(_insert_new_sqlite(), values)}
    query = select(message_rows.c.chat_jid, message_rows.c.id).where(
        message_rows.c.chat_jid.in_(sorted({item.chat_jid for item in new})),
        message_rows.c.id.in_(sorted({str(item.id) for item in new})),
    )
    taken = {(str(jid), str(mid)) for jid, mid in conn.execute(query)}
    fresh = {(item.chat_jid, item.id): item for item in new if (item.chat_jid, item.id) not in taken}
    if fresh:
        conn.execute(message_rows.insert(), [insert_values(item, now) for item in fresh.values()])
    return set(fresh)


@functools.cache
def _insert_new_sqlite() -> Any:
    """The SQLite statement of :func:`_insert_missing`, built once (and only where SQLite is used)."""
    stmt = dialect_insert("sqlite", message_rows).on_conflict_do_nothing(index_elements=["chat_jid", "id"])
    return stmt.returning(message_rows.c.chat_jid, message_rows.c.id)


def _tasks_by_id(conn: Connection, ids: Sequence[int], *, lock: bool = False) -> dict[int, Task]:
    if not ids:
        return {}
    query = select(tasks).where(tasks.c.id.in_(list(ids)))
    if lock:
        query = query.with_for_update()
    return {task.id: task for task in from_rows(Task, conn.execute(query))}


def _task(conn: Connection, task_id: int) -> Task | None:
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
    return None if row is None else from_row(Task, row)


def _append(conn: Connection, task_id: int, messages: Sequence[NewMessage], now: dt.datetime) -> int:
    """Append the messages not stored yet; count them on the task and move its ``last_fire_at`` forward."""
    stored = sum(append_message(conn, message, now).created for message in messages)
    newest = max((message.timestamp for message in messages if message.timestamp is not None), default=None)
    task = _task(conn, task_id)
    values: dict[str, Any] = {"fire_count": tasks.c.fire_count + stored}
    if newest is not None and task is not None and (task.last_fire_at is None or task.last_fire_at < newest):
        values["last_fire_at"] = newest
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
    return stored


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
