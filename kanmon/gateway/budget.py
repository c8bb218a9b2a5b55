"""Per-group daily budgets (issue 16 item 4): once a group has spent its budget of the day, no new run starts.

A group's ``container_config.daily_budget`` (US dollars, ``gated group set --daily-budget``) is checked before each
run of its lanes starts (:meth:`DailyBudget.holds`, called by the lane runner): the day is the day in the group's
time zone (``container_config.timezone``, UTC without one), and the spend is the sum of the usage recorded for that
day (:meth:`kanmon.store.Store.spent`). A run going on when the budget is crossed finishes; the next one waits.

A held lane is not failed: the runner reports it done with nothing run, so no attempt is used and nothing is
dead-lettered; its rows keep waiting, the loop offers the lane again every tick, and on the group's next day (or
once the budget is raised or reset) its runs start again. The chat whose rows wait gets one notice per day, stored
with the deterministic id ``budget-<folder>-<day>``, so a restart, a second lane or another tick adds no second one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence

from kanmon.clock import Clock
from kanmon.gateway.context import GATEWAY_ORIGIN, read_from_store
from kanmon.gateway.prompt import Batch, peek_batch
from kanmon.gateway.usage import Reported, group_zone, local_day, usage_entries
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
    return f"budget-{folder}-{day}"


class DailyBudget:
    """Holds the lanes of groups that have spent their daily budget; see the module docstring."""

    def __init__(
        self, db: AsyncStore, default_zone: str, clock: Clock, on_stored: Callable[[list[Message]], None]
    ) -> None:
        self._db, self._default_zone, self._clock, self._on_stored = db, default_zone, clock, on_stored
        self._noticed: set[tuple[str, str]] = set()  # (chat, notice id) stored or found by this gated

    async def holds(self, group: Group, lane: Lane) -> bool:
        """True when ``group`` has spent its daily budget today: ``lane`` must not start a run now. The chat whose
        rows wait first is told once that day."""
        budget = daily_budget(group.container_config)
        if budget is None:
            return False
        zone = group_zone(group.container_config, self._default_zone)
        now = self._clock.now()
        day = local_day(now, zone)
        spent: float = await self._db.retrying(self._db.store.spent, group.folder, day)
        if spent < budget:
            return False
        batch = await peek_batch(self._db, lane, 1)
        if batch is not None and (batch.reply_jid, notice_id(group.folder, day)) not in self._noticed:
            logger.warning("group %s spent $%.4f of its $%.2f budget on %s: its runs wait", group.folder, spent,
                           budget, day)  # fmt: skip
            text = (
                f"⚠ The daily budget of ${budget:.2f} is spent (${spent:.2f} on {day}); new messages wait until "
                f"tomorrow ({zone.key})."
            )
            notice = NewMessage(
                chat_jid=batch.reply_jid, id=notice_id(group.folder, day), content=text, direction="out",
                origin=GATEWAY_ORIGIN, topic=batch.reply_topic, delivered=read_from_store(batch.reply_jid),
            )  # fmt: skip
            stored: list[Message] = await self._db.retrying(self._db.store.record_replies, [notice], now=now)
            if len(self._noticed) > 10_000:
                self._noticed.clear()  # the store keeps them once anyway
            self._noticed.add((batch.reply_jid, notice_id(group.folder, day)))
            self._on_stored(stored)
        return True

    def usage(self, run: Run, batch: Batch, reported: Sequence[Reported], group: Group | None) -> list[UsageEntry]:
        """The store rows of a run's reported usage, dated today in ``group``'s zone (the default zone when the group
        is gone)."""
        zone = group_zone(group.container_config if group is not None else {}, self._default_zone)
        head = batch.head
        return usage_entries(run, reported, chat_jid=head.chat_jid, topic=head.topic, zone=zone, now=self._clock.now())
