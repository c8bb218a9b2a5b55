"""Usage and cost in the store (issue 16 item 4): one row per output block that reported usage.

Rows are keyed ``(run_id, output_index)``, like a run's replies: a reclaimed run replays its output from the start,
and what was recorded before is recognised and skipped, so nothing counts twice. A run's usage is recorded with its
outcome, in its last transaction (:meth:`kanmon.store.runs.RunStore.finish_runs`); sums per run, session, group and
day are queries (:meth:`UsageStore.usage_sums`), and a group's spend of one day is one indexed sum
(:meth:`UsageStore.spent`, the budget check before each run of a group that has a daily budget).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from kanmon.store.base import StoreBase
from kanmon.store.lists import in_list
from kanmon.store.tables import usage
from kanmon.store.text import storable

__all__ = ["SUM_KEYS", "UsageEntry", "UsageStore", "UsageSum", "record_usage"]

#: What :meth:`UsageStore.usage_sums` can group by.
SUM_KEYS: tuple[str, ...] = ("day", "group_folder", "topic", "chat_jid", "session_id", "run_id")
_NUMBERS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd")


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEntry:
    """What one output block of a run reported. ``day`` is ``YYYY-MM-DD`` in the group's time zone; tokens are
    counts; ``cost_usd`` US dollars."""

    run_id: str
    output_index: int
    group_folder: str
    topic: str
    chat_jid: str
    session_id: str | None
    day: str
    recorded_at: dt.datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageSum:
    """The sums of one group of usage rows: ``key`` maps each grouping column to its value; ``outputs`` counts the
    rows (output blocks that reported usage)."""

    key: dict[str, Any]
    outputs: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


def record_usage(conn: Connection, entries: Sequence[UsageEntry]) -> list[UsageEntry]:
    """Insert the entries not recorded yet (by ``(run_id, output_index)``) in ``conn``'s transaction; return them."""
    if not entries:
        return []
    runs = sorted({entry.run_id for entry in entries})
    found = conn.execute(_RECORDED, {"b_runs": runs})
    seen = {(str(run_id), int(index)) for run_id, index in found}
    fresh: list[UsageEntry] = []
    for entry in entries:
        if (entry.run_id, entry.output_index) not in seen:
            seen.add((entry.run_id, entry.output_index))
            fresh.append(entry)
    if fresh:
        # the session id (newSessionId) comes from the agent's output: a lone surrogate or a NUL is stored replaced
        rows = [{k: storable(v) if isinstance(v, str) else v for k, v in dataclasses.asdict(e).items()} for e in fresh]
        conn.execute(usage.insert(), rows)
    return fresh


class UsageStore(StoreBase):
    """Usage rows: recorded with a run's end (or here, for tests and tools), summed on demand."""

    def record_usage(self, entries: Sequence[UsageEntry]) -> list[UsageEntry]:
        """Record ``entries`` in one fenced transaction; returns those not recorded before."""
        with self._write(fenced=True) as conn:
            return record_usage(conn, entries)

    def usage_sums(
        self,
        by: Sequence[str],
        *,
        folder: str | None = None,
        since: str | None = None,
        runs: Sequence[str] | None = None,
    ) -> list[UsageSum]:
        """Sums grouped by the columns ``by`` (of :data:`SUM_KEYS`; empty: one total, none when there is no usage),
        only of group ``folder``, of days from ``since`` (``YYYY-MM-DD``) and of the run ids ``runs`` when given,
        ordered by ``by``. Raises ``ValueError`` for a column that cannot be grouped by."""
        for name in by:
            if name not in SUM_KEYS:
                raise ValueError(f"cannot sum usage by {name!r}: expected one of {', '.join(SUM_KEYS)}")
        keys = [usage.c[name] for name in by]
        sums = [func.coalesce(func.sum(usage.c[name]), 0).label(name) for name in _NUMBERS]
        query = select(*keys, func.count().label("outputs"), *sums).group_by(*keys).order_by(*keys)
        if folder is not None:
            query = query.where(usage.c.group_folder == folder)
        if since is not None:
            query = query.where(usage.c.day >= since)
        if runs is not None:
            query = query.where(usage.c.run_id.in_(list(runs)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_sum(row, by) for row in rows if row.outputs]

    def spent(self, folder: str, day: str) -> float:
        """US dollars group ``folder`` has spent on ``day`` (``YYYY-MM-DD`` in its zone); 0.0 when nothing."""
        with self._read() as conn:
            return float(conn.execute(_SPENT, {"b_folder": folder, "b_day": day}).scalar_one())


def _sum(row: Any, by: Sequence[str]) -> UsageSum:
    counts = [int(row._mapping[name]) for name in ("outputs", *_NUMBERS[:-1])]
    key = {name: row[i] for i, name in enumerate(by)}
    return UsageSum(key, counts[0], counts[1], counts[2], counts[3], counts[4], float(row.cost_usd))


_RECORDED = select(usage.c.run_id, usage.c.output_index).where(in_list(usage.c.run_id, "b_runs"))
_SPENT = select(func.coalesce(func.sum(usage.c.cost_usd), 0.0)).where(
    usage.c.group_folder == bindparam("b_folder"), usage.c.day == bindparam("b_day")
)
