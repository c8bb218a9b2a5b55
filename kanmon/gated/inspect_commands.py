"""``gated runs``, ``gated run-log``, ``gated dead`` and ``gated replies``: a failed run, its stderr, a dead letter
and what a chat was told, from the command line alone (issue 18).

Everything comes from the store (gated may run elsewhere). A run's log is what kanmon kept when it ended: the last
64 KiB of its stderr and of its stdout outside output blocks (docs/agent-protocol.md), secrets blanked, in the
``run_logs`` table. ``gated dead --retry`` puts dead letters back in one transaction
(:meth:`~kanmon.store.Store.retry_dead`); a running gated takes them at its next sweep of waiting lanes (within a
poll interval) as one new batch per lane, with the usual attempts (``queue.max_attempts``, SPEC §8).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import get_args

import click

from kanmon.clock import SystemClock
from kanmon.errors import InvalidInput
from kanmon.folders import validate_jid
from kanmon.gated.app import App, refuse_unknown_group
from kanmon.gated.completion import group_option
from kanmon.gated.output import emit_json, iso, json_option, message_json, run_json
from kanmon.store import Message, Run, RunStatus

__all__ = ["dead", "parse_moment", "replies", "run_log", "runs"]

pass_app = click.make_pass_decorator(App)

_AGO = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PREVIEW = 80  # characters of a message's text in a listing line


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """``--since``: a span back from ``now`` (``90s``, ``30m``, ``2h``, ``7d``) or an ISO 8601 date or time (UTC
    unless it says otherwise); raises :class:`InvalidInput`."""
    text = text.strip()
    if match := _AGO.fullmatch(text):
        return now - dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--since {text!r}: expected a span back like 30m, 2h or 7d, or a time like 2026-11-30T12:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _PREVIEW else flat[: _PREVIEW - 1] + "…"


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.command("runs")
@group_option("Only this group's runs.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(get_args(RunStatus)),
    help="Only runs with this status (repeat for several).",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many, newest first.")
@json_option
@pass_app
def runs(app: App, folder: str | None, statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """The latest runs, newest first: status, group, chat, batch, replies, duration, error."""
    store = app.store()
    found = store.list_runs(folder=folder, statuses=statuses, limit=limit)
    refuse_unknown_group(store, folder, "runs", history=lambda: found)
    if as_json:
        emit_json([run_json(run) for run in found])
        return
    if not found:
        click.echo("no runs" + (" matching" if folder or statuses else ""))
    for run in found:
        click.echo(_run_line(run))


def _run_line(run: Run) -> str:
    took = f"{(run.ended_at - run.started_at).total_seconds():.1f}s" if run.ended_at else "in flight"
    error = f"  error: {_line(run.error)}" if run.error else ""
    topic = f" #{run.topic}" if run.topic else ""
    return (
        f"{run.id}  {run.status:<8} {run.group_folder}  {run.chat_jid}{topic}  {_when(run.started_at)}  {took}"
        f"  {run.message_count} in, {run.output_count} out{error}"
    )


@click.command("run-log")
@click.argument("run_id")
@json_option
@pass_app
def run_log(app: App, run_id: str, as_json: bool) -> None:
    """Run RUN_ID: its record, then the last 64 KiB of its stderr and of the stdout it wrote outside output blocks."""
    store = app.store()
    run = store.get_run(run_id)
    if run is None:
        raise InvalidInput(f"no run {run_id!r} (`gated runs` lists them)")
    log = store.run_log(run_id)
    if as_json:
        emit_json(
            {
                "run": run_json(run),
                "stderr": log.stderr if log else "",
                "stdout": log.stdout if log else "",
                "recorded_at": iso(log.recorded_at) if log else None,
            }
        )
        return
    click.echo(_run_line(run))
    if run.error:
        click.echo(f"error: {run.error}")
    if log is None:
        why = "it is still in flight" if run.ended_at is None else "it wrote nothing to stderr or outside its blocks"
        click.echo(f"no log kept: {why}")
        return
    for name, text in (("stderr", log.stderr), ("stdout outside output blocks", log.stdout)):
        click.echo(f"--- {name} ({len(text.encode())} bytes, the last 64 KiB at most) ---")
        if text:
            click.echo(text.rstrip("\n"))


@click.command("dead")
@click.option("--chat", "chat_jid", metavar="JID", help="Only this chat's dead letters.")
@click.option("--retry", is_flag=True, help="Put them back: a running gated takes them again as a new batch.")
@json_option
@pass_app
def dead(app: App, chat_jid: str | None, retry: bool, as_json: bool) -> None:
    """Dead letters: messages whose batch failed its last attempt (oldest first), and the run that last tried each.

    With --retry they wait for their agent again (one transaction; a second --retry finds nothing to put back),
    and a running gated takes them within a poll interval as a new batch, with the usual attempts
    (queue.max_attempts). A batch that fails them all is a dead letter again.
    """
    if chat_jid is not None:
        validate_jid(chat_jid)  # a typo is an error, not "no dead letters"
    store = app.store()
    if retry:
        seqs = store.retry_dead(chat_jid=chat_jid)
        if as_json:
            emit_json({"retried": seqs})
            return
        if not seqs:
            click.echo("no dead letters to put back")
            return
        click.echo(f"put back {len(seqs)} dead letter(s) (seq {', '.join(map(str, seqs))}); gated runs them again")
        return
    rows = store.dead_letters(chat_jid=chat_jid)
    tried = store.last_runs(rows)
    if as_json:
        emit_json([{**message_json(row), "last_run": tried.get(row.seq)} for row in rows])
        return
    if not rows:
        click.echo("no dead letters")
    for row in rows:
        where = f"{row.routed_folder or '-'}" + (f"#{row.routed_topic}" if row.routed_topic else "")
        last = f"  last run {tried[row.seq]}" if row.seq in tried else ""
        click.echo(
            f"seq {row.seq}  {row.chat_jid}  -> {where}  {_when(row.received_at)}  {row.sender}:"
            f" {_line(row.content)}{last}"
        )


@click.command("replies")
@click.argument("chat_jid", metavar="CHAT")
@click.option("--since", metavar="WHEN", help="Only replies stored since then: 30m, 2h, 7d, or an ISO 8601 time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000), help="The latest this many.")
@json_option
@pass_app
def replies(app: App, chat_jid: str, since: str | None, limit: int, as_json: bool) -> None:
    """What was sent to CHAT (a chat JID), oldest first: each reply, its run, and its delivery (attempts, error)."""
    validate_jid(chat_jid)
    moment = parse_moment(since, SystemClock().now()) if since is not None else None
    rows = app.store().replies(chat_jid, since=moment, limit=limit)
    if as_json:
        emit_json([message_json(row) for row in rows])
        return
    if not rows:
        click.echo(f"no replies to {chat_jid}" + (" since then" if moment else ""))
    for row in rows:
        click.echo(_reply_line(row))


def _reply_line(row: Message) -> str:
    delivery = row.delivery_status or "read from the store"
    if row.delivery_attempts:
        delivery += f" after {row.delivery_attempts} attempt(s)"
    error = f"  error: {_line(row.delivery_error)}" if row.delivery_error else ""
    run = f"  run {row.run_id}" if row.run_id else f"  ({row.origin})" if row.origin else ""
    return f"seq {row.seq}  {_when(row.received_at)}  {delivery}{run}  {_line(row.content)}{error}"
