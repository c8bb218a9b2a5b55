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
import datetime as dt
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from kanmon.clock import Clock, SystemClock
from kanmon.gateway.errors import GatewayError
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.logcontext import bound
from kanmon.store import Chat, Message
from kanmon.store.aio import AsyncStore

__all__ = ["Deliverer", "DeliveryError", "DeliveryPolicy", "DeliveryWorker", "StoreReadChannel"]

logger = logging.getLogger(__name__)


class DeliveryError(GatewayError):
    """A channel did not take a message; ``transient`` ones are tried again later."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class Deliverer(Protocol):
    """Sends outbound rows of the chats whose JIDs start with one of ``prefixes``.

    A deliverer that also has ``exact = True`` takes its ``prefixes`` as whole JIDs instead (a daemon's outbox
    ``daemon:hook`` is not ``daemon:hook-2``'s).
    """

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


@dataclass(frozen=True, kw_only=True)
class DeliveryPolicy:
    """How long a channel's transient failures are retried, and how far apart (SPEC §11).

    A failed attempt leaves the row ``pending`` until ``retry_base * 2**(attempts-1)`` seconds (plus up to a quarter
    of jitter, at most ``max_backoff``) have passed; once ``deadline`` seconds have passed since the row was stored,
    the next transient failure fails it for good. ``retry_base`` 0 retries on the next pass; ``deadline`` None never
    gives up.
    """

    retry_base: float = 0.0
    max_backoff: float = 900.0
    deadline: float | None = None

    def backoff(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (growing, jittered from ``rng``, capped)."""
        if self.retry_base <= 0:
            return 0.0
        grown = self.retry_base * 2.0 ** min(max(attempts - 1, 0), 30)
        return min(self.max_backoff, grown * (1.0 + rng.random() / 4))


DeliverersSource = Sequence[Deliverer] | Callable[[], Awaitable[Sequence[Deliverer]]]


class DeliveryWorker:
    """Drains the pending outbound rows, channel by channel, whenever woken and every ``interval`` seconds.

    ``deliverers`` is a fixed list, or an async callable asked for the current list on every pass (channel adapters
    come and go while gated runs). Channels are delivered concurrently, each in a task of its own, so an adapter
    that hangs or fails does not hold up the others; within a channel, the rows of a chat go out in seq order and a
    chat whose oldest row is waiting for a retry sends nothing newer meanwhile.
    """

    def __init__(
        self,
        db: AsyncStore,
        deliverers: DeliverersSource,
        *,
        metrics: GatewayMetrics,
        interval: float = 2.0,
        clock: Clock | None = None,
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
        hooks: Hooks = NO_HOOKS,  # told of each failed attempt (delivery_failed, issue 16 item 6)
    ) -> None:
        self._db = db
        self._hooks = hooks
        self._store = db.store
        self._source: DeliverersSource = deliverers if callable(deliverers) else list(deliverers)
        self._metrics = metrics
        self._interval = interval
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.policy = policy or DeliveryPolicy()
        self._wake = asyncio.Event()
        self._woken_for: set[str] | None = set()  # chats a wake-up was for; None: look at every channel
        self._passes: dict[str, asyncio.Task[int]] = {}
        self._again: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        #: True while gated has lost its store lock: nothing is sent (the new holder may be sending the same rows).
        self.fenced = False

    def wake(self, jids: Iterable[str] | None = None) -> None:
        """Look for pending rows now: of the channels of ``jids`` (replies just stored there), or of every channel."""
        if jids is None:
            self._woken_for = None
        elif self._woken_for is not None:
            self._woken_for.update(jids)
        self._wake.set()

    async def deliverers(self) -> list[Deliverer]:
        """The channels to deliver to right now."""
        if callable(self._source):
            return list(await self._source())
        return list(self._source)

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set; a failing pass is logged and tried again on the next wake-up."""
        try:
            woken_for: set[str] | None = None  # the first pass (and every periodic one) looks at every channel
            while not stopping.is_set():
                self._wake.clear()
                try:
                    if not self.fenced:
                        self._start_passes(await self.deliverers(), woken_for)
                except Exception:
                    logger.exception("delivery pass failed; retrying")
                woken = await self._wait(stopping)
                woken_for, self._woken_for = (self._woken_for if woken else None), set()
        finally:
            # a pass in flight finishes (its request may already have reached the adapter) before anyone else looks
            await asyncio.gather(*self._passes.values(), return_exceptions=True)

    async def deliver_due(self) -> int:
        """Send every due pending row once, all channels at once; return how many were sent."""
        deliverers = await self.deliverers()
        results = await asyncio.gather(
            *(self._channel_pass(deliverer, deliverers) for deliverer in deliverers), return_exceptions=True
        )
        sent = 0
        for deliverer, result in zip(deliverers, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("delivery pass of %s failed: %s", deliverer.name, result, exc_info=result)
            else:
                sent += result
        return sent

    async def count_backlog(self) -> dict[str, int]:
        """Set ``kanmon_delivery_backlog`` to the pending outbound rows per channel now, and return it.

        One grouped read (:meth:`~kanmon.store.Store.pending_by_chat`), made when ``/metrics`` is scraped rather than
        per delivery, so the hot path pays nothing; each chat counts for the first channel that takes its JID
        (``none`` when none does: replies waiting for an adapter that is not registered). Tried once: raises
        :class:`~kanmon.store.StoreError` when the store does not answer.
        """
        pending: dict[str, int] = await self._db.once(self._store.pending_by_chat)
        deliverers = await self.deliverers()
        backlog = dict.fromkeys((deliverer.name for deliverer in deliverers), 0)
        for jid, rows in pending.items():
            owner = _owner(jid, None, deliverers)
            channel = owner.name if owner is not None else "none"
            backlog[channel] = backlog.get(channel, 0) + rows
        self._metrics.set_backlog(backlog)
        return backlog

    async def _wait(self, stopping: asyncio.Event) -> bool:
        """Wait for a wake-up (True), the next periodic pass or the stop (False), on the injected clock."""
        woke = asyncio.create_task(self._wake.wait())
        waits = [woke, asyncio.create_task(stopping.wait()), asyncio.create_task(self._clock.sleep(self._interval))]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return woke.done() and not woke.cancelled()

    def _start_passes(self, deliverers: list[Deliverer], jids: set[str] | None = None) -> None:
        """Start a pass for every channel (of ``jids`` when given) that has none in flight; one in flight gets
        another when it ends."""
        if jids is not None:
            deliverers = [d for d in deliverers if any(jid.startswith(d.prefixes) for jid in jids)]
        for deliverer in deliverers:
            running = self._passes.get(deliverer.name)
            if running is not None and not running.done():
                self._again.add(deliverer.name)
                continue
            task = asyncio.create_task(
                self._logged_pass(deliverer, deliverers), name=f"kanmon-deliver-{deliverer.name}"
            )
            self._passes[deliverer.name] = task
            task.add_done_callback(functools.partial(self._pass_done, deliverer.name))

    def _pass_done(self, name: str, task: asyncio.Task[int]) -> None:
        if self._passes.get(name) is task:
            del self._passes[name]
        if name in self._again:  # woken while it was busy: what woke us may be for this channel
            self._again.discard(name)
            self._wake.set()

    async def _logged_pass(self, deliverer: Deliverer, deliverers: list[Deliverer]) -> int:
        try:
            with bound(channel=deliverer.name):
                return await self._channel_pass(deliverer, deliverers)
        except Exception:
            logger.exception("delivery pass of %s failed; retrying", deliverer.name)
            return 0

    async def _channel_pass(self, deliverer: Deliverer, deliverers: Sequence[Deliverer]) -> int:
        """One pass over ``deliverer``'s due rows (one pass per channel at a time)."""
        lock = self._locks.setdefault(deliverer.name, asyncio.Lock())
        async with lock:
            rows: list[Message] = await self._db.retrying(
                self._store.pending_deliveries, deliverer.prefixes, now=self._clock.now(), exact=_exact(deliverer)
            )
            rows = await self._owned(deliverer, deliverers, rows)
            if isinstance(deliverer, StoreReadChannel):
                return await self._reached(deliverer, rows)
            return await self._send_in_order(deliverer, rows)

    async def _owned(self, deliverer: Deliverer, deliverers: Sequence[Deliverer], rows: list[Message]) -> list[Message]:
        """The rows that are ``deliverer``'s to send when other channels' prefixes overlap with its own.

        A chat goes to its channel of record (``chats.channel``) when that channel takes its JID, else to the first
        channel whose prefix matches: never to two.
        """
        rivals = [d for d in deliverers if d is not deliverer and _overlap(d.prefixes, deliverer.prefixes)]
        if not rows or not rivals:
            return rows
        chats: dict[str, Chat] = await self._db.retrying(self._store.get_chats, [row.chat_jid for row in rows])
        return [row for row in rows if _owner(row.chat_jid, chats.get(row.chat_jid), deliverers) is deliverer]

    async def _send_in_order(self, deliverer: Deliverer, rows: list[Message]) -> int:
        """Send rows in seq order; a chat whose oldest pending row is not among them waits (it is backing off).

        The pass ends at the first transient failure: the adapter is likely down, and each further row would wait
        out the same timeouts. The rows left are due and go first on the next pass.
        """
        if not rows:
            return 0
        heads: dict[str, int] = await self._db.retrying(
            self._store.oldest_pending_deliveries, sorted({row.chat_jid for row in rows})
        )
        due = {row.seq for row in rows}
        waiting = {jid for jid, seq in heads.items() if seq not in due}
        sent = 0
        for row in rows:
            if row.chat_jid in waiting:
                continue
            outcome = await self._deliver(deliverer, row)
            if outcome == "pending":
                break
            sent += outcome == "sent"
        return sent

    async def _reached(self, channel: StoreReadChannel, rows: list[Message]) -> int:
        """Rows of a channel that reads the store have arrived by being stored: marked sent together."""
        if not rows:
            return 0
        marked: int = await self._db.retrying(self._store.mark_sent, [row.seq for row in rows])
        self._metrics.deliveries.labels(channel=channel.name, result="sent").inc(marked)
        now = self._clock.now()
        for row in rows:
            self._metrics.delivery_lag_seconds.observe(max(0.0, (now - row.received_at).total_seconds()))
        return marked

    async def _deliver(self, deliverer: Deliverer, row: Message) -> str:
        """Try ``row`` once; record and return its new status (``sent``, ``pending`` or ``failed``)."""
        with bound(chat=row.chat_jid, channel=deliverer.name, attempt=row.delivery_attempts + 1):
            return await self._attempt(deliverer, row)

    async def _attempt(self, deliverer: Deliverer, row: Message) -> str:
        try:
            platform_id = await deliverer.send(row)
        except DeliveryError as exc:
            status, deliver_after = self._after_failure(row, transient=exc.transient)
            await self._db.retrying(
                self._store.mark_delivery, row.seq, status, error=str(exc), deliver_after=deliver_after
            )
            self._metrics.deliveries.labels(channel=deliverer.name, result=status).inc()
            self._hooks.notify("delivery_failed", message=row, error=str(exc), final=status == "failed")
            if status == "failed" and exc.transient:
                deadline = self.policy.deadline
                logger.error("delivery of seq=%d failed for good: still failing after %gs: %s", row.seq, deadline, exc)
            else:
                logger.warning("delivery of seq=%d: %s", row.seq, exc)
            return status
        await self._db.retrying(self._store.mark_delivery, row.seq, "sent", platform_message_id=platform_id)
        self._metrics.deliveries.labels(channel=deliverer.name, result="sent").inc()
        self._metrics.delivery_lag_seconds.observe(max(0.0, (self._clock.now() - row.received_at).total_seconds()))
        return "sent"

    def _after_failure(
        self, row: Message, *, transient: bool
    ) -> tuple[Literal["pending", "failed"], dt.datetime | None]:
        """A failed attempt's outcome: ``failed``, or ``pending`` until a backoff that never passes the deadline."""
        if not transient:
            return "failed", None
        now = self._clock.now()
        policy = self.policy
        if policy.deadline is not None and now >= row.received_at + dt.timedelta(seconds=policy.deadline):
            return "failed", None
        delay = policy.backoff(row.delivery_attempts + 1, self._rng)
        if delay <= 0:
            return "pending", None
        retry_at = now + dt.timedelta(seconds=delay)
        if policy.deadline is not None:  # one last try at the deadline itself
            retry_at = min(retry_at, row.received_at + dt.timedelta(seconds=policy.deadline))
        return "pending", retry_at


def _overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether a JID could start with a prefix of ``a`` and one of ``b`` (whole JIDs count as prefixes: may overlap)."""
    return any(x.startswith(y) or y.startswith(x) for x in a for y in b)


def _exact(deliverer: Deliverer) -> bool:
    """Whether ``deliverer``'s prefixes are whole JIDs (see :class:`Deliverer`)."""
    return getattr(deliverer, "exact", False) is True


def _takes(deliverer: Deliverer, jid: str) -> bool:
    """Whether ``jid`` is among the chats ``deliverer`` sends to."""
    return jid in deliverer.prefixes if _exact(deliverer) else jid.startswith(deliverer.prefixes)


def _owner(jid: str, chat: Chat | None, deliverers: Sequence[Deliverer]) -> Deliverer | None:
    """The channel that sends to ``jid``: its channel of record if that one takes it, else the first that does."""
    matching = [d for d in deliverers if _takes(d, jid)]
    if chat is not None and chat.channel:
        for deliverer in matching:
            if deliverer.name == chat.channel:
                return deliverer
    return matching[0] if matching else None
