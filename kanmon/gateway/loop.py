"""The message loop (SPEC §5): read new rows by seq, decide for each, record the decisions, wake the lanes.

One tick:

1. read up to ``poll_batch`` rows after the poll cursor (``router_state.last_seq``), in seq order;
2. send **every** inbound row through owner resolution and the four layers (commands and sticky settings take effect
   here, in order, each before the next row is looked at); rows kanmon wrote itself are never routed again;
3. record each row's decision and the new poll cursor in **one** transaction: forwarded rows wait for their folder's
   agent, commands and drops are ``done``, rows of chats nobody owns are ``skipped`` (so when a route appears later
   the chat starts from its next message, not its whole history). A crash before this commit re-reads the batch:
   sticky and command effects are idempotent (their replies have derived ids) and routing is recorded only once;
4. offer the forwarded rows to the impulse gate and enqueue the lanes of chats that fire, or whose hold ran out;
5. every ``poll_interval``, sweep: any lane with waiting rows that is neither held, running nor waiting is enqueued.
   The first sweep is the start-up recovery, and it rebuilds the gate's held state from the stored rows.

The loop ticks every ``poll_interval`` and at once when woken (:meth:`MessageLoop.wake`: a message put through
kanmon's own API in this process, a reply stored by a run). Store calls run in worker threads; the event loop
never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kanmon.clock import Clock, SystemClock
from kanmon.gateway.context import GATEWAY_ORIGIN, LayerContext
from kanmon.gateway.decisions import Builtin, Consumed, Daemon, Drop, Forward, IdleQueue, Ignored, Unowned
from kanmon.gateway.feed import ChatFeed
from kanmon.gateway.gate import ImpulseGate
from kanmon.gateway.held import stored_impulse
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.onboarding import note_unowned
from kanmon.gateway.owner import resolve_owner
from kanmon.gateway.pipeline import process_message
from kanmon.queue import GroupQueue, Lane, RetryPolicy, lane_for
from kanmon.router import ImpulseConfig
from kanmon.store import Dispatch, LaneHead, Message, NewMessage, Store

__all__ = ["LoopConfig", "MessageLoop", "QueueBridge", "daemon_jid", "delegation_jid"]

logger = logging.getLogger(__name__)

# How many held rows per chat recovery reads back to rebuild the gate (a chat's hold is decided by its first rows).
_RECOVERY_ROWS = 1000
# A failing tick (the database is down or locked) is tried again after 0.5 s, 1 s, 2 s … up to 30 s, with jitter.
_TICK_BACKOFF = RetryPolicy(max_attempts=1, base_delay=0.5, max_delay=30.0, jitter=0.5)


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """The loop's knobs (SPEC §5, §13)."""

    poll_interval: float = 2.0
    poll_batch: int = 200
    bot_names: frozenset[str] = frozenset()
    impulse: ImpulseConfig = field(default_factory=ImpulseConfig)
    # SPEC §11: a chat nobody owns goes on the onboarding list (kanmon.gateway.onboarding); off, its rows are
    # only skipped.
    onboarding: bool = False


def delegation_jid(folder: str) -> str:
    """The inbox of a delegation to ``folder``."""
    return f"local:{folder}"


def daemon_jid(name: str) -> str:
    """The outbox of the daemon target ``name``: rows there are POSTed to the daemon by its deliverer."""
    return f"daemon:{name}"


class QueueBridge:
    """The queue as the layers see it (``/stop``, ``/ping``, ``/status``), callable from the dispatch worker thread."""

    def __init__(self, queue: GroupQueue, loop: asyncio.AbstractEventLoop) -> None:
        self._queue = queue
        self._loop = loop

    def stop(self, lane: Lane) -> bool:
        """Ask the queue to stop ``lane``'s run; True when it is running."""
        if lane not in self._queue.running():
            return False
        asyncio.run_coroutine_threadsafe(self._queue.stop(lane), self._loop)
        return True

    def running_count(self) -> int:
        """Runs in flight."""
        return len(self._queue.running())

    def waiting_count(self) -> int:
        """Lanes waiting for a slot."""
        return len(self._queue.waiting())


@dataclass(frozen=True, slots=True)
class _Admitted:
    """A forwarded row on its way to the gate: its chat, verb and seq, the lane it runs in, its impulse settings."""

    chat_jid: str
    verb: str
    seq: int
    lane: Lane
    impulse: ImpulseConfig


class MessageLoop:
    """Polls the store and turns rows into lane work; see the module docstring."""

    def __init__(
        self,
        store: Store,
        queue: GroupQueue,
        *,
        config: LoopConfig,
        gate: ImpulseGate,
        feed: ChatFeed,
        metrics: GatewayMetrics,
        clock: Clock | None = None,
        offload: Callable[..., Awaitable[Any]] = asyncio.to_thread,
    ) -> None:
        self._store = store
        self._queue = queue
        self._config = config
        self._gate = gate
        self._feed = feed
        self._metrics = metrics
        self._clock: Clock = clock or SystemClock()
        self._offload = offload
        self._wake = asyncio.Event()
        self._cursor: int | None = None
        self._held_lanes: dict[str, set[Lane]] = {}
        self._last_sweep: float | None = None
        self._waiting: int | None = None  # rows waiting for an agent at the last sweep (kanmon_cursor_lag)
        self._bridge: QueueBridge | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ticks = 0
        self.last_tick_at: float | None = None  # monotonic time of the last good tick, for /readyz
        self._failures = 0
        #: True while gated has lost its store lock (:meth:`kanmon.gateway.Gateway.fence`): nothing is routed.
        self.fenced = False

    # ------------------------------------------------------------------------------------------------ driving
    def wake(self) -> None:
        """Tick now instead of at the next poll (safe from any thread)."""
        if self._loop is None or _running_loop() is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick until ``stopping`` is set; a failing tick is logged and retried with backoff, never fatal."""
        while not stopping.is_set():
            self._wake.clear()
            delay = self._next_wait()
            if self.fenced:
                await self._wait(stopping, self._config.poll_interval)
                continue
            try:
                await self.tick()
            except Exception as exc:
                self._failures += 1
                delay = _TICK_BACKOFF.delay(self._failures)
                if self._failures == 1:
                    logger.exception("loop tick failed; backing off (the batch will be read again)")
                else:
                    logger.warning(
                        "loop tick failed again (%d in a row): %s; next try in %.1fs", self._failures, exc, delay
                    )
            else:
                if self._failures:
                    logger.info("loop recovered after %d failed ticks", self._failures)
                self._failures = 0
            await self._wait(stopping, delay)

    async def tick(self) -> int:
        """One pass (module docstring, steps 1–5); returns how many rows were read."""
        began = time.perf_counter()
        if self._bridge is None:
            self._loop = asyncio.get_running_loop()
            self._bridge = QueueBridge(self._queue, self._loop)
        if self._cursor is None:
            self._cursor = await self._offload(self._store.poll_cursor)
        rows: list[Message] = await self._offload(self._store.new_messages, self._cursor, self._config.poll_batch)
        if rows:
            admitted = await self._offload(self._dispatch, rows)
            self._cursor = rows[-1].seq
            self._publish(rows)
            self._admit(admitted)
        for jid in self._gate.tick(self._gate_now()):
            self._release(jid)
        if self._sweep_due():
            await self._sweep()
        self._observe(time.perf_counter() - began)
        if len(rows) == self._config.poll_batch:
            self._wake.set()  # a full batch: more are waiting, read on without sleeping
        return len(rows)

    # ------------------------------------------------------------------------------------------------ dispatch
    def _dispatch(self, rows: Sequence[Message]) -> list[_Admitted]:
        """Steps 2–3, in a worker thread: decide every row, then record the decisions with the new cursor."""
        assert self._bridge is not None
        ctx = LayerContext(self._store, self._bridge, self._config.bot_names, impulse=self._config.impulse)
        ctx.know_chats([row.chat_jid for row in rows if row.direction == "in"])
        dispatches: list[Dispatch] = []
        admitted: list[_Admitted] = []
        for row in rows:
            if row.direction == "in":
                self._metrics.messages_ingested.labels(platform=row.chat_jid.partition(":")[0]).inc()
            dispatch = self._decide(row, ctx, admitted)
            if dispatch is not None:
                dispatches.append(dispatch)
        self._store.record_dispatch(dispatches, rows[-1].seq)
        return admitted

    def _decide(self, row: Message, ctx: LayerContext, admitted: list[_Admitted]) -> Dispatch | None:
        decision = process_message(row, ctx)
        if isinstance(decision, Ignored):
            return None
        if isinstance(decision, Unowned):
            logger.debug("skipped seq=%d chat=%s: %s", row.seq, row.chat_jid, decision.why)
            if self._config.onboarding:
                note_unowned(row, ctx)  # the row stays skipped; approval answers a copy of the newest
            return Dispatch(row.seq, "skipped")
        if isinstance(decision, Consumed | Drop):
            return Dispatch(row.seq, "done")
        if isinstance(decision, Builtin):
            self._builtin(row, ctx, decision.name)
            return Dispatch(row.seq, "done")
        if isinstance(decision, Daemon):
            self._to_daemon(row, decision.name)
            return Dispatch(row.seq, "done")
        if self._delegates(row, ctx, decision):
            return Dispatch(row.seq, "done")
        lane = lane_for(decision.folder, row.chat_jid, decision.topic)
        admitted.append(_Admitted(row.chat_jid, row.verb, row.seq, lane, decision.impulse))
        return Dispatch(row.seq, "new", decision.folder, decision.topic, decision.content)

    def _delegates(self, row: Message, ctx: LayerContext, decision: Forward) -> bool:
        """A row forwarded to a folder other than its chat's owner goes to that folder's ``local:`` inbox."""
        owner = resolve_owner(ctx, row.chat_jid).folder
        if decision.folder == owner:
            return False
        origin = row.forwarded_from or row.chat_jid  # a delegate delegating further still answers the first chat
        delegated = row.copy_as(
            chat_jid=delegation_jid(decision.folder),
            id=f"dlg-{row.seq}",  # derived: a re-read batch delegates once
            content=decision.content,
            forwarded_from=origin,
            origin=GATEWAY_ORIGIN,
        )
        self._store.put_message(delegated)
        logger.info("delegated seq=%d from %s to %s", row.seq, row.chat_jid, decision.folder)
        return True

    def _builtin(self, row: Message, ctx: LayerContext, name: str) -> None:
        if name == "ping":
            ctx.reply(row, "pong")
        else:
            logger.warning("seq=%d: unknown builtin handler %r; the message is kept and not answered", row.seq, name)

    def _to_daemon(self, row: Message, name: str) -> None:
        # Through the outbox like any reply: the daemon's deliverer POSTs it, retrying across restarts.
        self._store.put_message(
            NewMessage(
                chat_jid=daemon_jid(name),
                id=f"fwd-{row.seq}",
                content=row.content,
                direction="out",
                sender=row.sender,
                sender_name=row.sender_name,
                timestamp=row.timestamp,
                verb=row.verb,
                topic=row.topic,
                reply_to_id=row.id,
                forwarded_from=row.chat_jid,
                origin=GATEWAY_ORIGIN,
            )
        )

    # ------------------------------------------------------------------------------------------------ lanes
    def _publish(self, rows: Sequence[Message]) -> None:
        for row in rows:
            if row.chat_jid.startswith("web:"):
                self._feed.publish(row)

    def _admit(self, admitted: Sequence[_Admitted], now: float | None = None) -> None:
        for item in admitted:
            self._held_lanes.setdefault(item.chat_jid, set()).add(item.lane)
            at = self._gate_now() if now is None else now
            if self._gate.offer(item.chat_jid, item.verb, item.seq, at, item.impulse):
                self._release(item.chat_jid)

    def _release(self, jid: str) -> None:
        for lane in sorted(self._held_lanes.pop(jid, ())):
            self._queue.enqueue(lane)

    def _sweep_due(self) -> bool:
        now = self._clock.monotonic()
        if self._last_sweep is not None and now - self._last_sweep < self._config.poll_interval * 0.9:
            return False
        self._last_sweep = now
        return True

    async def _sweep(self) -> None:
        recovering = self.ticks == 0
        heads: list[LaneHead] = await self._offload(self._store.lane_heads)
        self._waiting = sum(head.count for head in heads)
        busy = set(self._queue.running()) | set(self._queue.waiting()) | set(self._queue.backing_off())
        for head in heads:
            lane = lane_for(head.folder, head.chat_jid, head.topic)
            if recovering:
                await self._recover(head)
            elif self._gate.holding(head.chat_jid) is None and lane not in busy:
                self._queue.enqueue(lane)
                busy.add(lane)

    async def _recover(self, head: LaneHead) -> None:
        """Rebuild the gate's hold of one stream from its stored rows, each offered at the time it arrived."""
        rows: list[tuple[_Admitted, float]] = await self._offload(self._held_rows, head)
        for item, arrived in rows:
            self._admit([item], arrived)
        if rows and self._gate.holding(head.chat_jid) is None:
            self._queue.enqueue(rows[0][0].lane)  # it fired, or its hold ran out while gated was down

    def _held_rows(self, head: LaneHead) -> list[tuple[_Admitted, float]]:
        ctx = LayerContext(self._store, IdleQueue(), impulse=self._config.impulse)
        lane = lane_for(head.folder, head.chat_jid, head.topic)
        admitted = []
        for row in self._store.lane_batch(head, _RECOVERY_ROWS):
            impulse = stored_impulse(ctx, row.chat_jid, row.sender, row.verb)
            admitted.append((_Admitted(row.chat_jid, row.verb, row.seq, lane, impulse), row.received_at.timestamp()))
        return admitted

    # ------------------------------------------------------------------------------------------------ time
    def _gate_now(self) -> float:
        # wall-clock seconds: a hold rebuilt after a restart is measured from the rows' stored arrival times
        return self._clock.now().timestamp()

    def _next_wait(self) -> float:
        wait = self._config.poll_interval
        deadline = self._gate.next_deadline()
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - self._gate_now()))
        return wait

    async def _wait(self, stopping: asyncio.Event, seconds: float) -> None:
        if self._wake.is_set() or seconds <= 0:
            await asyncio.sleep(0)
            return
        waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    def _observe(self, seconds: float) -> None:
        self.ticks += 1
        self.last_tick_at = self._clock.monotonic()
        self._metrics.poll_seconds.observe(seconds)
        self._metrics.impulse_held.set(self._gate.held())
        if self._waiting is not None:  # counted by the sweep, once per poll interval, from rows it reads anyway
            self._metrics.cursor_lag.set(self._waiting)
        counts = self._queue.counts()
        self._metrics.queue_running.set(counts.running)
        self._metrics.queue_waiting.set(counts.waiting)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
