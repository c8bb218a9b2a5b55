"""What ``gated usage``, ``gated status`` and ``/status`` show of usage and cost (issue 16 item 4).

:func:`today_spend` is each group's spend of its own today against its budget (one query for all groups: the
groups' todays are at most two dates apart). :func:`usage_report` is the document ``gated usage --json`` prints,
whose shape is stable (new keys may be added, none removed or renamed)::

    {"group": "corp" | null, "since": "YYYY-MM-DD" | null,
     "total": NUMBERS,
     "groups": [{"folder", "timezone", "today", "spent_today", "daily_budget" (null: none), **NUMBERS}],
     "days": [{"day", "folder", **NUMBERS}],
     "sessions": [{"folder", "topic", "session_id" (null: none known), "first_day", "last_day", **NUMBERS}]}

``NUMBERS`` is ``{"outputs", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
"cost_usd"}``: output blocks that reported usage, token counts, US dollars. ``days`` and ``sessions`` count from
``since`` (a day in each group's own zone), ``groups`` too except ``spent_today``; the lists are sorted by their keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kanmon.gateway.budget import daily_budget
from kanmon.gateway.usage import group_zone, local_day
from kanmon.store import Group, Store, UsageSum

__all__ = ["GroupSpend", "numbers", "render_report", "today_spend", "usage_report"]


@dataclass(frozen=True, slots=True)
class GroupSpend:
    """A group's spend of its today (``day`` in its ``zone``), in US dollars, and its daily budget (None: none)."""

    folder: str
    zone: str
    day: str
    spent: float
    budget: float | None

    def line(self) -> str:
        """``corp  $0.12 of $5.00 on 2026-11-30 (Europe/Berlin)``, ``held`` when the budget is spent."""
        budget = "" if self.budget is None else f" of ${self.budget:.2f}"
        spent_all = self.budget is not None and self.spent >= self.budget
        held = "  budget spent: runs wait for the next day" if spent_all else ""
        return f"{self.folder}  ${self.spent:.4f}{budget} on {self.day} ({self.zone}){held}"


def numbers(item: UsageSum) -> dict[str, Any]:
    """The ``NUMBERS`` of one sum."""
    return {
        "outputs": item.outputs, "input_tokens": item.input_tokens, "output_tokens": item.output_tokens,
        "cache_read_tokens": item.cache_read_tokens, "cache_write_tokens": item.cache_write_tokens,
        "cost_usd": round(item.cost_usd, 6),
    }  # fmt: skip


def today_spend(store: Store, groups: Iterable[Group], default_zone: str, now: dt.datetime) -> list[GroupSpend]:
    """Each group's spend of its today, by folder."""
    todays = {group.folder: (group_zone(group.container_config, default_zone), group) for group in groups}
    days = {folder: local_day(now, zone) for folder, (zone, _) in todays.items()}
    spent: dict[tuple[str, str], float] = {}
    if days:
        for item in store.usage_sums(("group_folder", "day"), since=min(days.values())):
            spent[(item.key["group_folder"], item.key["day"])] = item.cost_usd
    found = []
    for folder, (zone, group) in sorted(todays.items()):
        day = days[folder]
        budget = daily_budget(group.container_config)
        found.append(GroupSpend(folder, zone.key, day, spent.get((folder, day), 0.0), budget))
    return found


def usage_report(
    store: Store, *, folder: str | None, since: str | None, default_zone: str, now: dt.datetime
) -> dict[str, Any]:
    """The ``gated usage --json`` document (module docstring)."""
    totals = store.usage_sums((), folder=folder, since=since)
    by_group = {s.key["group_folder"]: s for s in store.usage_sums(("group_folder",), folder=folder, since=since)}
    groups = [group for group in store.list_groups() if folder is None or group.folder == folder]
    spends = {spend.folder: spend for spend in today_spend(store, groups, default_zone, now)}
    group_rows = []
    for name in sorted(set(by_group) | set(spends)):
        spend = spends.get(name)
        row: dict[str, Any] = {
            "folder": name, "timezone": spend.zone if spend else None, "today": spend.day if spend else None,
            "spent_today": round(spend.spent, 6) if spend else None, "daily_budget": spend.budget if spend else None,
        }  # fmt: skip
        group_rows.append(row | (numbers(by_group[name]) if name in by_group else numbers(_ZERO)))
    sessions = store.usage_sums(("group_folder", "topic", "session_id"), folder=folder, since=since)
    spans = {
        (s.key["group_folder"], s.key["topic"], s.key["session_id"], s.key["day"])
        for s in store.usage_sums(("group_folder", "topic", "session_id", "day"), folder=folder, since=since)
    }
    session_rows = []
    for s in sessions:
        key = (s.key["group_folder"], s.key["topic"], s.key["session_id"])
        session_days = sorted(day for *rest, day in spans if tuple(rest) == key)
        session_rows.append(
            {"folder": key[0], "topic": key[1], "session_id": key[2], "first_day": session_days[0],
             "last_day": session_days[-1]} | numbers(s)
        )  # fmt: skip
    days = store.usage_sums(("day", "group_folder"), folder=folder, since=since)
    return {
        "group": folder,
        "since": since,
        "total": numbers(totals[0] if totals else _ZERO),
        "groups": group_rows,
        "days": [{"day": s.key["day"], "folder": s.key["group_folder"]} | numbers(s) for s in days],
        "sessions": session_rows,
    }


def render_report(report: dict[str, Any]) -> list[str]:
    """The text of ``gated usage``: today per group, then per day, then per session."""

    def figures(row: dict[str, Any]) -> str:
        return (
            f"${row['cost_usd']:.4f}  in {row['input_tokens']}  out {row['output_tokens']}  cache read "
            f"{row['cache_read_tokens']}  write {row['cache_write_tokens']}  ({row['outputs']} outputs)"
        )

    lines = [f"total: {figures(report['total'])}"]
    lines.append("today:")
    for row in report["groups"]:
        if row["today"] is None:
            continue
        budget = "no budget" if row["daily_budget"] is None else f"budget ${row['daily_budget']:.2f}"
        lines.append(f"  {row['folder']}  ${row['spent_today']:.4f} on {row['today']} ({row['timezone']}), {budget}")
    lines.append("by day:")
    lines += [f"  {row['day']}  {row['folder']}  {figures(row)}" for row in report["days"]] or ["  none"]
    lines.append("by session:")
    lines += [
        f"  {row['folder']}{'#' + row['topic'] if row['topic'] else ''}  {row['session_id'] or '(no session)'}  "
        f"{row['first_day']}..{row['last_day']}  {figures(row)}"
        for row in report["sessions"]
    ] or ["  none"]
    return lines


_ZERO = UsageSum({}, 0, 0, 0, 0, 0, 0.0)
