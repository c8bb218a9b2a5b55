"""Tasks as people give and see them (issue 15): a new task from what an operator typed, validated against the
store's groups and routes, and a task described for ``gated task list|show``, ``gated status`` and ``/tasks``."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from kanmon.errors import InvalidInput
from kanmon.folders import validate_folder, validate_jid, validate_topic
from kanmon.gateway.context import LayerContext
from kanmon.gateway.decisions import IdleQueue
from kanmon.gateway.schedule import ScheduleKind, format_duration, parse_schedule, parse_zone
from kanmon.gateway.scheduler import schedule_of, task_problem
from kanmon.store import NewTask, Store, Task

__all__ = ["MISSED_POLICIES", "describe_schedule", "new_task", "resumed_next", "task_json", "task_line", "when"]

MISSED_POLICIES = ("latest", "skip", "all")


def new_task(
    store: Store,
    folder: str,
    *,
    kind: ScheduleKind,
    text: str,
    prompt: str,
    zone: str,
    now: dt.datetime,
    chat_jid: str | None = None,
    topic: str = "",
    missed: str = "latest",
    created_by: str = "operator",
) -> NewTask:
    """A task of ``folder`` that puts ``prompt`` into ``chat_jid`` (default: the group's web chat ``web:<folder>``)
    on the schedule ``kind``/``text`` (:func:`kanmon.gateway.schedule.parse_schedule`) read in ``zone``.

    Raises :class:`InvalidInput` (nothing is written) for a bad folder, schedule, zone or policy, an empty prompt, a
    group that is not registered, or a chat that does not belong to the group (its messages would be skipped or
    answered by another group's agent).
    """
    validate_folder(folder)
    if not prompt.strip():
        raise InvalidInput("a task needs a prompt (--prompt TEXT)")
    if missed not in MISSED_POLICIES:
        raise InvalidInput(f"unknown missed policy {missed!r}: one of {', '.join(MISSED_POLICIES)}")
    schedule, first = parse_schedule(kind, text, zone=zone, now=now)
    chat = chat_jid or f"web:{folder}"
    validate_jid(chat)
    validate_topic(chat, topic)
    problem = task_problem(LayerContext(store, IdleQueue()), folder, chat)
    if problem is not None:
        raise InvalidInput(f"cannot schedule into {chat}: {problem}")
    return NewTask(
        group_folder=folder,
        chat_jid=chat,
        topic=topic,
        prompt=prompt,
        kind=schedule.kind,
        expression=schedule.expression,
        timezone=zone,
        missed=missed,  # type: ignore[arg-type]
        next_fire_at=first,
        created_at=schedule.anchor or now,
        created_by=created_by,
    )


def resumed_next(task: Task, now: dt.datetime) -> dt.datetime | None:
    """The next occurrence of a task resumed at ``now``: what was missed while it was paused never fires."""
    return schedule_of(task).next_after(now)


def describe_schedule(task: Task) -> str:
    """``cron '0 9 * * 1-5' Europe/Berlin``, ``every 15m`` or ``at 2026-12-01 09:00 UTC``."""
    if task.kind == "cron":
        return f"cron '{task.expression}' {task.timezone}"
    if task.kind == "every":
        return f"every {format_duration(int(task.expression))}"
    return f"at {when(dt.datetime.fromisoformat(task.expression), task.timezone)}"


def when(instant: dt.datetime | None, zone: str) -> str:
    """``instant`` in the task's zone, and in UTC when that differs: ``2026-12-01 09:00 CET (08:00 UTC)``."""
    if instant is None:
        return "-"
    local = instant.astimezone(parse_zone(zone))
    text = f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
    if local.utcoffset() != dt.timedelta(0):
        text += f" ({instant.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)"
    return text


def task_line(task: Task, *, width: int = 40) -> str:
    """One line: id, status, group → chat, schedule, next fire, prompt (cut to ``width`` characters)."""
    prompt = task.prompt if len(task.prompt) <= width else task.prompt[: width - 1] + "…"
    prompt = " ".join(prompt.split())
    state = task.status if task.reason is None else f"{task.status} ({task.reason})"
    nxt = f"next {when(task.next_fire_at, task.timezone)}" if task.next_fire_at is not None else "no next fire"
    topic = f" #{task.topic}" if task.topic else ""
    return (
        f"{task.id}\t{state}\t{task.group_folder} → {task.chat_jid}{topic}\t{describe_schedule(task)}\t{nxt}\t{prompt}"
    )


def task_json(task: Task) -> dict[str, Any]:
    """Every field of ``task`` as JSON values; times ISO 8601 UTC, and the next fire also in the task's zone."""

    def iso(instant: dt.datetime | None, zone: str = "UTC") -> str | None:
        return None if instant is None else instant.astimezone(parse_zone(zone)).isoformat()

    kind: Literal["cron", "every", "at"] = task.kind
    return {
        "id": task.id,
        "group": task.group_folder,
        "chat_jid": task.chat_jid,
        "topic": task.topic,
        "prompt": task.prompt,
        "kind": kind,
        "expression": task.expression,
        "schedule": describe_schedule(task),
        "timezone": task.timezone,
        "missed": task.missed,
        "status": task.status,
        "reason": task.reason,
        "next_fire_at": iso(task.next_fire_at),
        "next_fire_local": iso(task.next_fire_at, task.timezone),
        "last_fire_at": iso(task.last_fire_at),
        "fire_count": task.fire_count,
        "created_by": task.created_by,
        "created_at": iso(task.created_at),
    }
