"""`gated task add|list|show|pause|resume|rm|run-now`: scheduled tasks (issue 15, :mod:`kanmon.gateway.scheduler`).

These commands write the store; a running ``gated run`` sees the change at its scheduler's next look
(``scheduler.interval``, 1 s) and a ``run-now`` message within ``watch_interval`` (0.25 s).
"""

from __future__ import annotations

import datetime as dt
import json

import click

from kanmon.errors import InvalidInput
from kanmon.gated.app import App, refuse_unknown_group
from kanmon.gated.completion import group_folders, group_option
from kanmon.gateway.context import LayerContext
from kanmon.gateway.decisions import IdleQueue
from kanmon.gateway.schedule import ScheduleKind
from kanmon.gateway.scheduler import occurrence_message, task_problem
from kanmon.gateway.tasks import MISSED_POLICIES, describe_schedule, new_task, resumed_next, task_json, task_line, when
from kanmon.store import Store, Task

__all__ = ["task"]

pass_app = click.make_pass_decorator(App)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _task(store: Store, task_id: int) -> Task:
    found = store.get_task(task_id)
    if found is None:
        raise InvalidInput(f"no task {task_id} (`gated task list` shows them)")
    return found


@click.group()
def task() -> None:
    """Scheduled tasks: a prompt put into a group's chat on a cron schedule, every interval, or once."""


@task.command("add")
@click.argument("folder", shell_complete=group_folders)
@click.option("--cron", metavar="EXPR", help="Five-field cron expression, read in --tz (e.g. '0 9 * * 1-5').")
@click.option("--every", metavar="DURATION", help="A fixed interval: 90m, 2h, 1d, 1h30m (at least 1m).")
@click.option("--at", "at", metavar="TIME", help="Once: ISO 8601 (2026-12-01T09:00, wall time in --tz) or +2h.")
@click.option("--tz", "zone", metavar="ZONE", help="IANA zone of --cron and --at.  [default: scheduler.timezone]")
@click.option("--prompt", required=True, help="What the agent is told at each occurrence.")
@click.option("--chat", "chat_jid", metavar="JID", help="The chat it goes to.  [default: web:FOLDER]")
@click.option("--topic", default="", help="The topic (agent session) it goes to.")
@click.option(
    "--missed", type=click.Choice(MISSED_POLICIES), default="latest", show_default=True,
    help="After downtime: fire the newest missed occurrence, none, or all of them (capped by scheduler.catch_up).",
)  # fmt: skip
@pass_app
def task_add(
    app: App,
    folder: str,
    cron: str | None,
    every: str | None,
    at: str | None,
    zone: str | None,
    prompt: str,
    chat_jid: str | None,
    topic: str,
    missed: str,
) -> None:
    """Add a task to the group FOLDER: exactly one of --cron, --every or --at."""
    options: tuple[tuple[ScheduleKind, str | None], ...] = (("cron", cron), ("every", every), ("at", at))
    given = [(kind, value) for kind, value in options if value is not None]
    if len(given) != 1:
        raise InvalidInput("give exactly one of --cron EXPR, --every DURATION or --at TIME")
    [(kind, text)] = given
    if zone is not None and kind == "every":
        raise InvalidInput("--tz applies to --cron and --at; an --every interval is the same in every zone")
    store = app.store()
    new = new_task(
        store, folder, kind=kind, text=text, prompt=prompt, zone=zone or app.settings.scheduler.timezone,
        now=_now(), chat_jid=chat_jid, topic=topic, missed=missed,
    )  # fmt: skip
    added = store.add_task(new)
    click.echo(
        f"task {added.id} added: {describe_schedule(added)} → {added.chat_jid}; "
        f"next fire {when(added.next_fire_at, added.timezone)}"
    )


@task.command("list")
@group_option("Only this group's tasks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array with every field.")
@pass_app
def task_list(app: App, folder: str | None, as_json: bool) -> None:
    """List tasks: id, status, group → chat, schedule, next fire (in the task's zone and in UTC), prompt."""
    store = app.store()
    tasks = store.list_tasks(folder)
    refuse_unknown_group(store, folder, "tasks", history=lambda: tasks)
    if as_json:
        click.echo(json.dumps([task_json(item) for item in tasks], indent=2, ensure_ascii=False))
        return
    if not tasks:
        click.echo("no tasks (add one with `gated task add FOLDER --cron EXPR --prompt TEXT`)")
    for item in tasks:
        click.echo(task_line(item))


@task.command("show")
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, the fields of task list --json.")
@pass_app
def task_show(app: App, task_id: int, as_json: bool) -> None:
    """Every field of the task TASK_ID."""
    item = _task(app.store(), task_id)
    fields = task_json(item)
    if as_json:
        click.echo(json.dumps(fields, indent=2, ensure_ascii=False))
        return
    fields["next_fire"] = when(item.next_fire_at, item.timezone)
    fields["last_fire"] = when(item.last_fire_at, item.timezone)
    for name, value in fields.items():
        click.echo(f"{name}: {'' if value is None else value}")


@task.command("pause")
@click.argument("task_id", type=int)
@pass_app
def task_pause(app: App, task_id: int) -> None:
    """Stop an active task from firing until it is resumed."""
    store = app.store()
    current = _task(store, task_id)
    if current.status != "active":
        raise InvalidInput(f"task {task_id} is {current.status}, not active")
    paused = store.set_task_status(task_id, "paused", next_fire_at=None, only_from=["active"])
    if paused is None or paused.status != "paused":
        raise InvalidInput(f"task {task_id} changed meanwhile; look again with `gated task show {task_id}`")
    click.echo(f"task {task_id} paused")


@task.command("resume")
@click.argument("task_id", type=int)
@pass_app
def task_resume(app: App, task_id: int) -> None:
    """Resume a paused task from its next occurrence (what it missed while paused does not fire)."""
    store = app.store()
    current = _task(store, task_id)
    if current.status != "paused":
        raise InvalidInput(f"task {task_id} is {current.status}, not paused")
    upcoming = resumed_next(current, _now())
    if upcoming is None:
        raise InvalidInput(f"task {task_id} has no occurrence left ({describe_schedule(current)}); rm it")
    resumed = store.set_task_status(task_id, "active", next_fire_at=upcoming, only_from=["paused"])
    if resumed is None or resumed.status != "active":
        raise InvalidInput(f"task {task_id} changed meanwhile; look again with `gated task show {task_id}`")
    click.echo(f"task {task_id} resumed; next fire {when(upcoming, current.timezone)}")


@task.command("rm")
@click.argument("task_id", type=int)
@pass_app
def task_rm(app: App, task_id: int) -> None:
    """Delete the task (the messages it put into its chat stay)."""
    if not app.store().remove_task(task_id):
        raise InvalidInput(f"no task {task_id} (`gated task list` shows them)")
    click.echo(f"removed task {task_id}")


@task.command("run-now")
@click.argument("task_id", type=int)
@pass_app
def task_run_now(app: App, task_id: int) -> None:
    """Fire one extra occurrence now (id task:<id>:manual:<now>); the schedule is unchanged."""
    store = app.store()
    item = _task(store, task_id)
    problem = task_problem(LayerContext(store, IdleQueue()), item.group_folder, item.chat_jid)
    if problem is not None:
        raise InvalidInput(f"task {task_id} cannot fire: {problem}")
    now = _now()
    fired = store.fire_task_now(task_id, occurrence_message(item, now, manual=True), now=now)
    state = "fired" if fired.stored else "already fired this second"
    click.echo(f"task {task_id} {state}: task:{task_id}:manual:{now:%Y-%m-%dT%H:%M:%SZ} in {item.chat_jid}")
