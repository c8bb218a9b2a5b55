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
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence

from kanmon.clock import Clock, SystemClock
from kanmon.folders import split_jid
from kanmon.gateway.channels import Deliverer, StoreReadChannel, exact, overlap, owner
from kanmon.gateway.delivery_policy import DeliveryError, DeliveryPolicy, unexpected_failure
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.logcontext import bound
from kanmon.store import Chat, Message
from kanmon.store.aio import AsyncStore

__all__ = ["Deliverer", "DeliveryError", "DeliveryPolicy", "DeliveryWorker", "StoreReadChannel"]

logger = logging.getLogger(__name__)


DeliverersSource = Sequence[Deliverer] | Callable[[], Awaitable[Sequence[Deliverer]]]
ChatKey = tuple[str, str]  # (channel name, chat JID)
Pass = tuple[int, list[asyncio.Task[int]]]  # a channel pass: rows marked at once, and the chat tasks it started
_CHAT_BATCH = 100  # rows a chat task reads at a time; one that sent them all looks again
_UNOWNED_REMEMBERED = 1000  # chats named as having no channel, remembered so each is named once


class DeliveryWorker:
    """Drains the pending outbound rows, channel by channel, whenever woken and every ``interval`` seconds.

    ``deliverers`` is a fixed list, or an async callable asked for the current list on every pass (channel adapters
    come and go while gated runs). Channels are delivered concurrently, each in a task of its own, so an adapter
    that hangs or fails does not hold up the others. Within a channel, each chat with due rows gets a task of its
    own too (``policy.chats_at_once`` of them sending at once), so a chat whose send is slow (a big upload, a
    platform's per-chat rate limit) holds up no other chat; a chat's rows go out one at a time in seq order, and a
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
        self._passes: dict[str, asyncio.Task[Pass]] = {}
        self._again: dict[str, set[str] | None] = {}  # channels woken while a pass was in flight: for which chats
        self._locks: dict[str, asyncio.Lock] = {}
        self._sending: dict[ChatKey, asyncio.Task[int]] = {}  # the chats with sends in flight, by (channel, JID)
        self._slots: dict[str, asyncio.Semaphore] = {}  # per channel: policy.chats_at_once sends in flight at most
        self._rewake: set[ChatKey] = set()  # chats with more to send once their sends in flight end
        self._closing = False
        self._unowned: set[str] = set()  # chats already named as having no channel (see _warn_unowned)
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
            # a send in flight finishes (its request may already have reached the adapter) before anyone else looks;
            # meanwhile no chat starts another (what is left goes out in the gateway's last deliver_due)
            self._closing = True
            try:
                await asyncio.gather(*self._passes.values(), return_exceptions=True)
                await asyncio.gather(*self._sending.values(), return_exceptions=True)
            finally:
                self._closing = False

    async def deliver_due(self) -> int:
        """Send every due pending row once, all channels at once; return how many were sent."""
        deliverers = await self.deliverers()
        results = await asyncio.gather(
            *(self._channel_pass(deliverer, deliverers) for deliverer in deliverers), return_exceptions=True
        )
        sent = 0
        sends: list[asyncio.Task[int]] = []
        for deliverer, result in zip(deliverers, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("delivery pass of %s failed: %s", deliverer.name, result, exc_info=result)
            else:
                sent += result[0]
                sends += result[1]
        return sent + sum(await asyncio.gather(*sends))

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
            taker = owner(jid, None, deliverers)
            channel = taker.name if taker is not None else "none"
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
            self._warn_unowned(jids, deliverers)
            deliverers = [d for d in deliverers if any(jid.startswith(d.prefixes) for jid in jids)]
        for deliverer in deliverers:
            running = self._passes.get(deliverer.name)
            if running is not None and not running.done():
                earlier = self._again.get(deliverer.name, set())
                self._again[deliverer.name] = None if jids is None or earlier is None else earlier | jids
                continue
            task = asyncio.create_task(
                self._logged_pass(deliverer, deliverers), name=f"kanmon-deliver-{deliverer.name}"
            )
            self._passes[deliverer.name] = task
            task.add_done_callback(functools.partial(self._pass_done, deliverer.name))

    def _warn_unowned(self, jids: set[str], deliverers: list[Deliverer]) -> None:
        """Log once per chat (until one of the channels takes it) that replies just stored there have no channel to
        go out by: they wait in the outbox, counted by ``kanmon_delivery_backlog{channel="none"}``."""
        for jid in jids:
            if owner(jid, None, deliverers) is not None:
                self._unowned.discard(jid)
            elif jid not in self._unowned:
                if len(self._unowned) >= _UNOWNED_REMEMBERED:
                    self._unowned.clear()  # a bound, not a cache: at worst a chat is named again
                self._unowned.add(jid)
                logger.warning(
                    "replies to %s wait in the outbox: no registered channel takes %s: JIDs; they go out once an "
                    "adapter for them registers",
                    jid,
                    split_jid(jid)[0],
                )

    def _pass_done(self, name: str, task: asyncio.Task[Pass]) -> None:
        if self._passes.get(name) is task:
            del self._passes[name]
        if name in self._again:  # woken while it was busy: for chats this pass may have read too early
            self.wake(self._again.pop(name))

    async def _logged_pass(self, deliverer: Deliverer, deliverers: list[Deliverer]) -> Pass:
        try:
            with bound(channel=deliverer.name):
                return await self._channel_pass(deliverer, deliverers)
        except Exception:
            logger.exception("delivery pass of %s failed; retrying", deliverer.name)
            return 0, []

    async def _channel_pass(self, deliverer: Deliverer, deliverers: Sequence[Deliverer]) -> Pass:
        """One pass over ``deliverer``'s due rows (one pass per channel at a time): the rows of a channel that reads
        the store are marked at once, the chats of one that sends each get a task (the pass returns them)."""
        lock = self._locks.setdefault(deliverer.name, asyncio.Lock())
        async with lock:
            now, whole = self._clock.now(), exact(deliverer)
            if isinstance(deliverer, StoreReadChannel):
                rows: list[Message] = await self._db.retrying(
                    self._store.pending_deliveries, deliverer.prefixes, now=now, exact=whole
                )
                mine = await self._owned(deliverer, deliverers, [row.chat_jid for row in rows])
                return await self._reached(deliverer, [row for row in rows if row.chat_jid in mine]), []
            jids: list[str] = await self._db.retrying(self._store.due_chats, deliverer.prefixes, now=now, exact=whole)
            mine = await self._owned(deliverer, deliverers, jids)
            return 0, self._start_chats(deliverer, [jid for jid in jids if jid in mine])

    async def _owned(self, deliverer: Deliverer, deliverers: Sequence[Deliverer], jids: list[str]) -> set[str]:
        """Those of ``jids`` that are ``deliverer``'s to send to when other channels' prefixes overlap with its own.

        A chat goes to its channel of record (``chats.channel``) when that channel takes its JID, else to the first
        channel whose prefix matches: never to two.
        """
        rivals = [d for d in deliverers if d is not deliverer and overlap(d.prefixes, deliverer.prefixes)]
        if not jids or not rivals:
            return set(jids)
        chats: dict[str, Chat] = await self._db.retrying(self._store.get_chats, jids)
        return {jid for jid in jids if owner(jid, chats.get(jid), deliverers) is deliverer}

    def _start_chats(self, deliverer: Deliverer, jids: list[str]) -> list[asyncio.Task[int]]:
        """A task for each of ``jids`` with no sends in flight, in their order; a chat that has some is looked at
        again when they end (a task of its own would overtake them)."""
        stalled = asyncio.Event()  # set at this pass's first transient failure: the adapter is likely down
        started: list[asyncio.Task[int]] = []
        for jid in jids:
            key = (deliverer.name, jid)
            if key in self._sending:
                self._rewake.add(key)
                continue
            task = asyncio.create_task(self._chat_sends(deliverer, jid, stalled), name=f"kanmon-deliver-{jid}")
            self._sending[key] = task
            task.add_done_callback(functools.partial(self._chat_done, key))
            started.append(task)
        return started

    def _chat_done(self, key: ChatKey, task: asyncio.Task[int]) -> None:
        if self._sending.get(key) is task:
            del self._sending[key]
        if key in self._rewake:  # woken while it was sending, or it sent a whole batch: look again
            self._rewake.discard(key)
            self.wake([key[1]])

    async def _chat_sends(self, deliverer: Deliverer, jid: str, stalled: asyncio.Event) -> int:
        """Send chat ``jid``'s due rows one at a time in seq order, in one of the channel's slots; return how many
        were sent.

        It reads the chat's rows itself once it has its slot, so a row another task sent meanwhile is never sent
        again. It stops at a row that is backing off (the rows behind it wait, SPEC §11 order) and at a transient
        failure, which stalls the pass: its chats still waiting for a slot send nothing this time, since each
        further row would wait out the same timeouts. The rows left are due and go first on the next pass.
        """
        key = (deliverer.name, jid)
        try:
            async with self._slots.setdefault(deliverer.name, asyncio.Semaphore(self.policy.chats_at_once)):
                if stalled.is_set() or self._halted:
                    return 0
                rows: list[Message] = await self._db.retrying(self._store.chat_outbox, jid, limit=_CHAT_BATCH)
                sent = 0
                for row in rows:
                    if stalled.is_set() or self._halted or not self._due(row):
                        return sent
                    outcome = await self._deliver(deliverer, row)
                    if outcome == "pending":
                        stalled.set()
                        return sent
                    sent += outcome == "sent"
                if len(rows) == _CHAT_BATCH:
                    self._rewake.add(key)
                return sent
        except Exception:
            logger.exception("delivery to %s failed; retrying", jid)
            return 0

    @property
    def _halted(self) -> bool:
        """Nothing more is to be sent now: gated lost its store lock, or :meth:`run` is stopping."""
        return self.fenced or self._closing

    def _due(self, row: Message) -> bool:
        return row.deliver_after is None or row.deliver_after <= self._clock.now()

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
        except Exception as raised:
            # A deliverer raises DeliveryError; anything else (a bug, an answer its client could not decode) is a
            # transient failure too, so it is counted, backs off and meets the deadline instead of being sent again
            # on every pass with the chat's later replies waiting behind it.
            exc = raised if isinstance(raised, DeliveryError) else unexpected_failure(raised)
            if exc is not raised:
                logger.error("delivery of seq=%d by %s raised an unexpected error", row.seq, deliverer.name,
                             exc_info=raised)  # fmt: skip
            status, deliver_after = self.policy.after_failure(
                row, self._clock.now(), self._rng, transient=exc.transient, retry_after=exc.retry_after
            )
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
