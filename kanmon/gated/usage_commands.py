"""`gated usage [--group F] [--since DAY] [--json]`: what agents reported they used, and what it cost (issue 16).

Everything comes from the store (gated may run elsewhere). ``--json`` prints :func:`kanmon.gateway.usage_report
.usage_report`'s document, whose shape is stable (described there and in README).
"""

from __future__ import annotations

import datetime as dt
import json
import re

import click

from kanmon.clock import SystemClock
from kanmon.errors import InvalidInput
from kanmon.gated.app import App, refuse_unknown_group
from kanmon.gated.completion import group_option
from kanmon.gateway.usage_report import render_report, today_spend, usage_report
from kanmon.store import Store

__all__ = ["parse_since", "show_today", "usage"]

pass_app = click.make_pass_decorator(App)
_DAYS_BACK = re.compile(r"(\d{1,5})d")


def parse_since(text: str, today: dt.date) -> str:
    """``YYYY-MM-DD``, or ``Nd`` for the day N days before ``today`` (``0d``: today); raises InvalidInput."""
    text = text.strip()
    if match := _DAYS_BACK.fullmatch(text):
        return (today - dt.timedelta(days=int(match[1]))).isoformat()
    try:
        return dt.date.fromisoformat(text).isoformat() if len(text) == 10 else _bad(text)
    except ValueError:
        return _bad(text)


def show_today(store: Store, default_zone: str, now: dt.datetime) -> None:
    """``gated status``'s usage lines: each group's spend of its today, of those with a budget or spend today."""
    spends = [s for s in today_spend(store, store.list_groups(), default_zone, now) if s.spent or s.budget is not None]
    click.echo("usage today:" if spends else "usage today: none")
    for spend in spends:
        click.echo(f"  {spend.line()}")


def _bad(text: str) -> str:
    raise InvalidInput(f"--since {text!r}: expected a day like 2026-11-30, or a number of days back like 7d")


@click.command("usage")
@group_option("Only this group's usage.")
@click.option("--since", metavar="DAY", help="From this day (YYYY-MM-DD, in each group's zone) or N days back (7d).")
@click.option("--json", "as_json", is_flag=True, help="The stable JSON document (see README).")
@pass_app
def usage(app: App, folder: str | None, since: str | None, as_json: bool) -> None:
    """Tokens and cost the agents reported: today per group (against its daily budget), per day, per session."""
    now = SystemClock().now()
    day = parse_since(since, now.date()) if since is not None else None
    store = app.store()
    refuse_unknown_group(store, folder, "usage", history=lambda: store.usage_sums((), folder=folder))
    report = usage_report(store, folder=folder, since=day, default_zone=app.settings.scheduler.timezone, now=now)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for line in render_report(report):
        click.echo(line)
