"""``gated status [--json]``: what the store says, for people and for monitoring (its exit status).

Everything comes from the store (gated may run elsewhere). ``gated status`` exits with :attr:`Exit.ATTENTION` (4)
while the store holds something an operator must look at: dead letters (``gated dead``), deliveries that failed for
good (``gated replies CHAT``), or runs stuck in flight (longer than their group's ``timeout`` plus
:data:`STUCK_GRACE`: a run past its timeout is stopped within seconds by the gated that owns it, so one still in
flight means that gated is gone or wedged; ``gated runs --status running``). Cron or a monitoring check can call it
as is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import click

from kanmon.clock import SystemClock
from kanmon.gated.app import App
from kanmon.gated.auth_commands import refused_json, show_refused
from kanmon.gated.exits import Exit
from kanmon.gated.output import emit_json, iso, json_option, run_json
from kanmon.gated.usage_commands import show_today
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.dispatch import daemon_jid
from kanmon.gateway.held import HeldStatus, held_chats
from kanmon.gateway.tasks import describe_schedule, task_json, when
from kanmon.gateway.usage_report import today_spend
from kanmon.queue import lane_for
from kanmon.store import Run, Store, Task, WaitingChat
from kanmon.store.lock import StoreLock

__all__ = ["STUCK_GRACE", "status", "stuck_runs"]

pass_app = click.make_pass_decorator(App)

_LISTED = 20  # lines listed per section of `gated status`; the counts are always complete
_NEXT_FIRES = 5  # the next task fires `gated status` shows
_RECENT = 10  # the last runs `gated status` shows
#: Seconds past its group's hard timeout after which a run still in flight counts as stuck.
STUCK_GRACE = 120.0


def stuck_runs(runs: list[Run], timeouts: Callable[[str], float], now: dt.datetime) -> set[str]:
    """The ids of ``runs`` in flight longer than their group's timeout (``timeouts(folder)``, seconds) plus
    :data:`STUCK_GRACE`."""
    return {run.id for run in runs if (now - run.started_at).total_seconds() > timeouts(run.group_folder) + STUCK_GRACE}


@click.command()
@json_option
@pass_app
def status(app: App, as_json: bool) -> None:
    """Runs in flight, chats the impulse gate holds, chats waiting for their agent, recent runs, dead letters.

    Everything comes from the store (gated may run elsewhere): a batch is running while its run is in flight in
    session_log; a chat is held when its waiting rows, weighed by the impulse gate at the times they arrived (as
    gated's start-up recovery does), hold it below the threshold and the hold has not run out; the rest wait.

    Exits 4 while no gated serves the store (none holds its lock), or there are dead letters, failed deliveries or
    stuck runs (0 otherwise), for cron and monitoring.
    """
    store = app.store()
    holder = StoreLock(store.engine, instance=app.settings.instance).held_by()
    now = SystemClock().now()
    running = store.active_runs()
    groups = {group.folder: group.container_config for group in store.list_groups()}
    stuck = stuck_runs(running, lambda folder: _timeout(groups.get(folder, {}), app.settings.runtime.timeout), now)
    counts = store.counts()
    problems = {
        "gated_down": int(holder is None),
        "dead_letters": counts["dead_letters"],
        "deliveries_failed": counts["deliveries_failed"],
        "stuck_runs": len(stuck),
    }
    if as_json:
        emit_json({"gated": holder, **_document(app, store, now, running, stuck, counts, problems)})
    else:
        click.echo(f"gated: {holder}" if holder else "gated: none serves this store (no `gated run` holds its lock)")
        _print(app, store, now, running, stuck, counts)
    if any(problems.values()):
        raise click.exceptions.Exit(int(Exit.ATTENTION))


def _timeout(config: Mapping[str, Any], default: float) -> float:
    value = config.get("timeout")
    return float(value) if isinstance(value, int | float) else default


def _document(
    app: App,
    store: Store,
    now: dt.datetime,
    running: list[Run],
    stuck: set[str],
    counts: dict[str, Any],
    problems: dict[str, int],
) -> dict[str, Any]:
    """``gated status --json`` (docs/cli-json.md#gated-status)."""
    waiting = store.waiting_chats()
    held = held_chats(store, app.settings.impulse.config(), store.waiting_rows(), now)
    held_jids = {item.chat_jid for item in held}
    by_jid = {chat.chat_jid: chat for chat in waiting}
    zone = app.settings.scheduler.timezone
    return {
        "store": app.describe_store(),
        "now": iso(now),
        "counts": {
            "groups": counts["groups"],
            "routes": counts["routes"],
            "chats": store.chat_count(),
            "messages": counts["messages"],
            "poll_cursor": store.poll_cursor(),
            "last_seq": counts["last_seq"],
            "skipped": counts["skipped"],
            "deliveries_pending": counts["deliveries_pending"],
            "tasks_active": counts["tasks_active"],
        },
        "problems": problems,
        "running": [{**run_json(run), "stuck": run.id in stuck} for run in running],
        "held": [
            {
                "chat_jid": item.chat_jid,
                "waiting": by_jid[item.chat_jid].waiting if item.chat_jid in by_jid else item.held.count,
                "weight": item.held.weight,
                "threshold": item.threshold,
                "fires_at": iso(item.fires_at),
            }
            for item in held
        ],
        "waiting": [
            {"chat_jid": c.chat_jid, "waiting": c.waiting, "oldest_seq": c.oldest_seq, "unrouted": c.unrouted}
            for c in waiting
            if c.chat_jid not in held_jids
        ],
        "next_tasks": [task_json(task) for task in store.upcoming_tasks(_NEXT_FIRES)],
        "usage_today": [
            {"group": s.folder, "day": s.day, "zone": s.zone, "spent_usd": round(s.spent, 6), "budget_usd": s.budget}
            for s in today_spend(store, store.list_groups(), zone, now)
            if s.spent or s.budget is not None
        ],
        "recent_runs": [run_json(run) for run in store.recent_runs(_RECENT)],
        "refused": refused_json(store, now),
    }


def _print(
    app: App, store: Store, now: dt.datetime, running: list[Run], stuck: set[str], counts: dict[str, Any]
) -> None:
    click.echo(f"store: {app.describe_store()}")
    click.echo(
        f"groups {counts['groups']}  routes {counts['routes']}  chats {store.chat_count()}  messages"
        f" {counts['messages']}  (poll cursor at seq {store.poll_cursor()} of {counts['last_seq']})"
    )
    _show_running(running, stuck, app.settings.instance, now)
    waiting = store.waiting_chats()
    held = held_chats(store, app.settings.impulse.config(), store.waiting_rows(), now)
    _show_held(held, {chat.chat_jid: chat for chat in waiting}, now)
    held_jids = {item.chat_jid for item in held}
    _show_waiting([chat for chat in waiting if chat.chat_jid not in held_jids])
    _show_tasks(store.upcoming_tasks(_NEXT_FIRES), counts["tasks_active"])
    show_today(store, app.settings.scheduler.timezone, now)
    click.echo("last runs (`gated runs`; a run's stderr: `gated run-log RUN_ID`):")
    for run_ in store.recent_runs(_RECENT):
        took = f"{(run_.ended_at - run_.started_at).total_seconds():.1f}s" if run_.ended_at else "…"
        error = f"  {run_.error}" if run_.error else ""
        click.echo(
            f"  {run_.status:<8} {_lane(run_)}  {run_.message_count} in, {run_.output_count} out, {took}"
            f"  {_ago(run_.started_at, now)}  run {run_.id}{error}"
        )
    show_refused(store, now)
    click.echo(
        f"dead letters: {counts['dead_letters']} (`gated dead`)  skipped (no owner, refused): {counts['skipped']}"
        f"  deliveries pending: {counts['deliveries_pending']}  failed: {counts['deliveries_failed']}"
    )
    stranded = no_channel(store, app.settings.daemons)
    if stranded:
        platforms = ", ".join(sorted({f"{jid.partition(':')[0]}:" for jid in stranded}))
        click.echo(
            f"  {sum(stranded.values())} of them to chats no registered channel takes ({platforms}): they go out once"
            " an adapter for them registers (`gated adapter telegram`, or yours)"
        )


def no_channel(store: Store, daemons: Mapping[str, str]) -> dict[str, int]:
    """Pending replies per chat that no registered adapter (by its JID prefixes) and no configured daemon's outbox
    takes: they wait until an adapter for them registers, with nothing in their row to say so."""
    prefixes = tuple(prefix for channel in store.list_channels() for prefix in channel.jid_prefixes)
    outboxes = {daemon_jid(name) for name in daemons}
    return {
        jid: rows
        for jid, rows in store.pending_by_chat().items()
        if not (prefixes and jid.startswith(prefixes)) and jid not in outboxes and not read_from_store(jid)
    }


def _show_tasks(upcoming: list[Task], active: int) -> None:
    click.echo(f"next task fires: {active} active task(s)" if active else "next task fires: none")
    for task in upcoming:
        click.echo(f"  {when(task.next_fire_at, task.timezone)}  task {task.id}  {task.group_folder} → {task.chat_jid}"
                   f"  {describe_schedule(task)}")  # fmt: skip
    if active > len(upcoming):
        click.echo(f"  … and {active - len(upcoming)} more (`gated task list`)")


def _show_running(runs: list[Run], stuck: set[str], instance: str, now: dt.datetime) -> None:
    click.echo(f"running: {len(runs)}" + (f" ({len(stuck)} stuck past their timeout)" if stuck else ""))
    for run_ in runs[:_LISTED]:
        seqs = f"seq {run_.first_seq}-{run_.last_seq}, " if run_.first_seq is not None else ""
        other = f"  (instance {run_.instance})" if run_.instance != instance else ""
        flag = "  STUCK" if run_.id in stuck else ""
        click.echo(
            f"  {_lane(run_)}  {run_.chat_jid}  run {run_.id}"
            f"  {seqs}{run_.message_count} messages  since {_ago(run_.started_at, now)}{other}{flag}"
        )
    _more(len(runs))


def _show_held(held: list[HeldStatus], waiting: dict[str, WaitingChat], now: dt.datetime) -> None:
    click.echo(f"held: {len(held)} chat(s) the impulse gate holds back")
    for status_ in held[:_LISTED]:
        chat = waiting.get(status_.chat_jid)
        rows = chat.waiting if chat is not None else status_.held.count
        fires = status_.fires_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        click.echo(
            f"  {status_.chat_jid}  {rows} waiting, weight {status_.held.weight} of {status_.threshold},"
            f" fires at {fires} (in {_span(status_.fires_at - now)})"
        )
    _more(len(held))


def _show_waiting(waiting: list[WaitingChat]) -> None:
    click.echo(f"waiting: {len(waiting)} chat(s) with messages for their agent")
    for chat in waiting[:_LISTED]:
        unread = f" ({chat.unrouted} not read by the loop yet)" if chat.unrouted else ""
        click.echo(f"  {chat.chat_jid}  {chat.waiting} waiting from seq {chat.oldest_seq}{unread}")
    _more(len(waiting))


def _more(total: int) -> None:
    if total > _LISTED:
        click.echo(f"  … and {total - _LISTED} more")


def _lane(run: Run) -> str:
    return str(lane_for(run.group_folder, run.chat_jid, run.topic))


def _ago(moment: dt.datetime, now: dt.datetime) -> str:
    return f"{_span(now - moment)} ago"


def _span(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
