"""Outbound delivery (SPEC §11): every reply is a ``pending`` row first; a deliverer per channel sends it.

The table is the outbox. A reply is stored before anyone tries to send it, a deliverer marks it ``sent`` only once
the channel took it, and a restarted gated picks up whatever is still ``pending``: nothing lives only in memory
(arizuko's outbox was an in-memory list that a restart emptied).

Channels built in here have nothing to send over a wire: a ``web:`` chat is read by the browser from the store and
the live feed, and a ``local:`` chat is a delegation's inbox, read by the loop. Their deliverer just records that the
row reached its reader. Channel adapters over HTTP plug in as further :class:`Deliverer` objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from kanmon.clock import Clock, SystemClock
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.store import Message, Store

__all__ = ["Deliverer", "DeliveryError", "DeliveryWorker", "StoreReadChannel"]

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A channel did not take a message; ``transient`` ones are tried again later."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class Deliverer(Protocol):
    """Sends outbound rows of the chats whose JIDs start with one of ``prefixes``."""

    name: str
    prefixes: tuple[str, ...]

    async def send(self, message: Message) -> str | None:
        """Deliver ``message``; return the platform's message id if it gave one; raise DeliveryError if not taken."""
        ...


class StoreReadChannel:
    """A channel whose readers read the store itself (``web:``, ``local:``): storing the row was the delivery."""

    def __init__(self, name: str, prefixes: Sequence[str]) -> None:
        self.name = name
        self.prefixes = tuple(prefixes)

    async def send(self, message: Message) -> str | None:
        """Nothing to send: the row is where its reader looks."""
        return None


class DeliveryWorker:
    """Drains the pending outbound rows, channel by channel, whenever woken and every ``interval`` seconds."""

    def __init__(
        self,
        store: Store,
        deliverers: Sequence[Deliverer],
        *,
        metrics: GatewayMetrics,
        interval: float = 2.0,
        clock: Clock | None = None,
        offload: Callable[..., Awaitable[Any]] = asyncio.to_thread,
    ) -> None:
        self._store = store
        self._deliverers = list(deliverers)
        self._metrics = metrics
        self._interval = interval
        self._clock: Clock = clock or SystemClock()
        self._offload = offload
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for pending rows now (a run stored a reply)."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set; a failing pass is logged and tried again on the next wake-up."""
        while not stopping.is_set():
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                logger.exception("delivery pass failed; retrying")
            waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stopping.wait())]
            try:
                await asyncio.wait(waits, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()

    async def deliver_due(self) -> int:
        """Send every due pending row once, per channel; return how many were sent."""
        sent = 0
        for deliverer in self._deliverers:
            rows: list[Message] = await self._offload(self._store.pending_deliveries, deliverer.prefixes)
            if isinstance(deliverer, StoreReadChannel):
                sent += await self._reached(deliverer, rows)
                continue
            for row in rows:
                sent += await self._deliver(deliverer, row)
        return sent

    async def _reached(self, channel: StoreReadChannel, rows: list[Message]) -> int:
        """Rows of a channel that reads the store have arrived by being stored: marked sent together."""
        if not rows:
            return 0
        marked: int = await self._offload(self._store.mark_sent, [row.seq for row in rows])
        self._metrics.deliveries.labels(channel=channel.name, result="sent").inc(marked)
        now = self._clock.now()
        for row in rows:
            self._metrics.delivery_lag_seconds.observe(max(0.0, (now - row.received_at).total_seconds()))
        return marked

    async def _deliver(self, deliverer: Deliverer, row: Message) -> int:
        try:
            platform_id = await deliverer.send(row)
        except DeliveryError as exc:
            status = "pending" if exc.transient else "failed"
            await self._offload(self._store.mark_delivery, row.seq, status, error=str(exc))
            self._metrics.deliveries.labels(channel=deliverer.name, result=status).inc()
            logger.warning("delivery of seq=%d to %s via %s: %s", row.seq, row.chat_jid, deliverer.name, exc)
            return 0
        await self._offload(self._store.mark_delivery, row.seq, "sent", platform_message_id=platform_id)
        self._metrics.deliveries.labels(channel=deliverer.name, result="sent").inc()
        self._metrics.delivery_lag_seconds.observe(max(0.0, (self._clock.now() - row.received_at).total_seconds()))
        return 1
