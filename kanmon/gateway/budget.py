"""Per-group daily budgets (issue 16 item 4): once a group has spent its budget of the day, no new run starts.

A group's ``container_config.daily_budget`` (US dollars, ``gated group set --daily-budget``) is checked before each
run of its lanes starts (:meth:`DailyBudget.holds`, called by the lane runner): the day is the day in the group's
time zone (``container_config.timezone``, UTC without one), and the spend is the sum of the usage recorded for that
day (:meth:`kanmon.store.Store.spent`). A run going on when the budget is crossed finishes; the next one waits.

A held lane is not failed: the runner reports it done with nothing run, so no attempt is used and nothing is
dead-lettered; its rows keep waiting, the loop offers the lane again every tick, and on the group's next day (or
once the budget is raised or reset) its runs start again. Each chat whose rows wait gets one notice per day, stored
with the deterministic id ``budget-<folder>-<day>``, so a restart, a second lane or another tick adds no second one.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping, Sequence

from kanmon.clock import Clock
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.heads import lane_of
from kanmon.gateway.prompt import Batch
from kanmon.gateway.usage import Reported, group_zone, local_day, usage_entries
from kanmon.message_ids import derived_id
from kanmon.queue import Lane
from kanmon.store import Group, Message, NewMessage, Run, UsageEntry
from kanmon.store.aio import AsyncStore

__all__ = ["DailyBudget", "daily_budget", "notice_id"]

logger = logging.getLogger(__name__)


def daily_budget(config: Mapping[str, object]) -> float | None:
    """The group's daily budget in US dollars (``container_config.daily_budget``), or None without a usable one."""
    value = config.get("daily_budget")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def notice_id(folder: str, day: str) -> str:
    """The message id of the budget notice of ``folder`` on ``day``: one per chat and day (ids are unique per chat)."""
    return derived_id("budget-", folder, day)


class DailyBudget:
    """Holds the lanes of groups that have spent their daily budget; see the module docstring."""

    def __init__(
        self, db: AsyncStore, default_zone: str, clock: Clock, on_stored: Callable[[list[Message]], None]
    ) -> None:
        self._db, self._default_zone, self._clock, self._on_stored = db, default_zone, clock, on_stored
        self._noticed: set[tuple[str, str]] = set()  # (chat, notice id) stored or found by this gated
        self._over: dict[str, tuple[str, float]] = {}  # folder -> (day, spend) of a group found over its budget

    async def holds(self, group: Group, lane: Lane) -> bool:
        """True when ``group`` has spent its daily budget today: ``lane`` must not start a run now. Each chat whose
        rows wait in the lane is told once that day.

        Spend only grows within a day, so once a group is found over its budget, later checks that day (the lane is
        offered every tick) ask the store only which chats wait, not the spend again, unless the budget was raised.
        """
        budget = daily_budget(group.container_config)
        if budget is None:
            return False
        zone = group_zone(group.container_config, self._default_zone)
        now = self._clock.now()
        day = local_day(now, zone)
        known = self._over.get(group.folder)
        if known is not None and known[0] == day and budget <= known[1]:
            spent = known[1]
        else:
            spent = await self._db.retrying(self._db.store.spent, group.folder, day)
            if spent < budget:
                self._over.pop(group.folder, None)
                return False
            self._over[group.folder] = (day, spent)
            logger.warning("group %s spent $%.4f of its $%.2f budget on %s: its runs wait for the next day",
                           group.folder, spent, budget, day)  # fmt: skip
        await self._notify(group.folder, lane, day, now, f"⚠ The daily budget of ${budget:.2f} is spent "
                           f"(${spent:.2f} on {day}); new messages wait until tomorrow ({zone.key}).")  # fmt: skip
        return True

    async def _notify(self, folder: str, lane: Lane, day: str, now: dt.datetime, text: str) -> None:
        """Store the notice in each chat with rows waiting in ``lane`` that has not had it today."""
        heads = await self._db.retrying(self._db.store.lane_heads, folder)
        mid = notice_id(folder, day)
        notices: list[NewMessage] = []
        for head in heads:
            jid = head.forwarded_from or head.chat_jid
            if lane_of(head) != lane or (jid, mid) in self._noticed:
                continue
            self._noticed.add((jid, mid))  # also: two streams of one chat get one notice
            notices.append(NewMessage(
                chat_jid=jid, id=mid, content=text, direction="out", origin=GATEWAY_ORIGIN, topic=head.topic,
                delivered=read_from_store(jid),
            ))  # fmt: skip
        if not notices:
            return
        try:
            stored: list[Message] = await self._db.retrying(self._db.store.record_replies, notices, now=now)
        except BaseException:
            self._noticed.difference_update((notice.chat_jid, mid) for notice in notices)  # tried again next time
            raise
        if len(self._noticed) > 10_000:
            self._noticed = {(notice.chat_jid, mid) for notice in notices}  # the store keeps each notice once anyway
        self._on_stored(stored)

    def usage(self, run: Run, batch: Batch, reported: Sequence[Reported], group: Group | None) -> list[UsageEntry]:
        """The store rows of a run's reported usage, dated today in ``group``'s zone (the default zone when the group
        is gone)."""
        zone = group_zone(group.container_config if group is not None else {}, self._default_zone)
        head = batch.head
        return usage_entries(run, reported, chat_jid=head.chat_jid, topic=head.topic, zone=zone, now=self._clock.now())
