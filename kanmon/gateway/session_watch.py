"""The session expiry watcher (issue 16 item 2; the seed's background expiry watcher): resets and memory flushes
happen soon after a session expires, not only when its chat next speaks.

At start (what expired while gated was down) and every ``interval`` seconds on the injected clock after,
:class:`ExpiryWatch` asks :meth:`SessionResets.due <kanmon.gateway.session_reset.SessionResets.due>` which lanes have a
session their policy expired or a memory flush pending, and offers each to the queue. The lane's run does the work in
its own slot (:meth:`~kanmon.gateway.session_reset.SessionResets.before_run`), so a session is never reset while its run
is going and the global cap still holds; a lane that is running is marked to run again after (the queue's own rule).
With no rows waiting, that run starts no agent. Hermes' watcher flushed from its own task, beside the running agent;
kanmon's goes through the lane instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kanmon.clock import Clock
from kanmon.gateway.registry import Registry
from kanmon.gateway.session_reset import SessionResets
from kanmon.queue import Lane
from kanmon.stopping import nap
from kanmon.store import StoreError

__all__ = ["ExpiryWatch"]

logger = logging.getLogger(__name__)


class ExpiryWatch:
    """Offers the queue the lanes whose sessions expired or wait for a flush; see the module docstring."""

    def __init__(
        self,
        resets: SessionResets,
        registry: Registry,
        enqueue: Callable[[Lane], None],
        *,
        clock: Clock,
        interval: float = 60.0,
    ) -> None:
        self._resets, self._registry, self._enqueue, self._clock = resets, registry, enqueue, clock
        self.interval = interval
        self.fenced = False  # the store lock is lost: offer nothing until it is back
        self._early = asyncio.Event()  # what may end a wait early besides stopping: nothing does yet

    async def run(self, stopping: asyncio.Event) -> None:
        """Look now and every ``interval`` seconds until ``stopping`` is set; a failing look is logged, never fatal."""
        while not stopping.is_set():
            if not self.fenced:
                try:
                    await self.sweep()
                except StoreError as exc:
                    logger.warning("session expiry watcher: the store failed (%s); looking again in %gs", exc,
                                   self.interval)  # fmt: skip
            await nap(self._early, stopping, self._clock, self.interval)

    async def sweep(self) -> list[Lane]:
        """Offer every due lane to the queue; returns them."""
        lanes = sorted(await self._resets.due(self._registry.groups.values()), key=str)
        for lane in lanes:
            self._enqueue(lane)
        if lanes:
            logger.info("session expiry watcher: %d lane(s) with an expired session or a pending flush", len(lanes))
        return lanes
