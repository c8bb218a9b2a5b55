"""The message loop (SPEC §5): read new rows by seq, decide for each, record the decisions, wake the lanes.

One tick:

1. on a store thread (:class:`~kanmon.gateway.dispatch.Dispatcher`): read up to ``poll_batch`` rows after the poll
   cursor, send every inbound row through owner resolution and the four layers, and record the decisions, the rows
   the tick writes and the new cursor in **one** transaction;
2. publish the rows of ``web:`` chats to the live feed, and wake the deliverers of the rows the tick wrote;
3. offer the forwarded rows to the impulse gate and enqueue the lanes of chats that fire, or whose hold ran out:
   at once when the chat was quiet, after a short settle while messages for it are still arriving, and, while the
   loop reads a backlog (full batches), once it has caught up (a burst becomes one run per group; the single message
   of a quiet chat waits for nothing);
4. every ``poll_interval``, sweep: any lane with waiting rows that is neither held, running, settling nor waiting
   is enqueued. The first sweep is the start-up recovery, and it rebuilds the gate's held state from the stored rows.

The loop ticks every ``poll_interval`` and at once when woken (:meth:`MessageLoop.wake`: a message put through
kanmon's own API in this process, a row a run stored to be routed, a reply to a chat a live page or OpenAI stream
listens to, any reply when a plugin observes ``message_stored``), but never sooner than ``tick_gap`` (5 ms) after a
tick that read rows: messages put back to back share a tick (one read, one dispatch transaction) instead of paying
one each, while the first message after a quiet spell waits for nothing. All waiting is on the injected clock, so
tests drive time instead of sleeping. It starts reading at :meth:`kanmon.store.Store.start_cursor`: a lost poll
cursor costs one query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kanmon.clock import Clock, SystemClock
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.dispatch import Admitted, DispatchConfig, Dispatcher, TickWork
from kanmon.gateway.feed import ChatFeed
from kanmon.gateway.gate import ImpulseGate
from kanmon.gateway.heads import lane_of
from kanmon.gateway.held import stored_impulse
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.gateway.settle import Settle
from kanmon.queue import GroupQueue, Lane, RetryPolicy
from kanmon.router import ImpulseConfig
from kanmon.stopping import nap, unless_stopped
from kanmon.store import LaneHead, Message, StoreError
from kanmon.store.aio import AsyncStore

__all__ = ["LoopConfig", "MessageLoop", "QueueBridge"]

logger = logging.getLogger(__name__)

# How many held rows per chat recovery reads back to rebuild the gate (a chat's hold is decided by its first rows).
_RECOVERY_ROWS = 1000
# While the loop reads a backlog (full batches), lanes wait to be enqueued until it has caught up, at most this long.
_BACKLOG_HOLD = 1.0
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
    #: Sender authorisation and DM pairing (kanmon.gateway.auth); the default lets everyone through.
    auth: AuthConfig = field(default_factory=AuthConfig)
    #: Longest a lane whose chat is busy waits for the rest of a burst before it is enqueued (0: never waits).
    settle_max: float = 0.25
    #: The zone a group's days are counted in unless it names its own (``scheduler.timezone``; ``/status`` usage).
    timezone: str = "UTC"
    #: Seconds between two checks, while the loop waits for its next poll, for inbound rows another process stored
    #: (:meth:`~kanmon.store.Store.inbound_after`, one indexed read); 0: such rows wait for the next poll.
    watch_interval: float = 0.25
    #: After a tick that read rows, the next one waits at least this long (seconds; 0: never): messages arriving
    #: back to back share a tick instead of paying one each. The first message after a quiet spell waits for nothing.
    tick_gap: float = 0.005


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

    def offer(self, lane: Lane) -> None:
        """Enqueue ``lane`` on the event loop (after its current run, if any: the queue's rule)."""
        self._loop.call_soon_threadsafe(self._queue.enqueue, lane)


class MessageLoop:
    """Polls the store and turns rows into lane work; see the module docstring."""

    def __init__(
        self,
        db: AsyncStore,
        queue: GroupQueue,
        *,
        config: LoopConfig,
        gate: ImpulseGate,
        feed: ChatFeed,
        metrics: GatewayMetrics,
        registry: Registry,
        clock: Clock | None = None,
        on_stored: Callable[[list[Message]], None] = lambda rows: None,
        hooks: Hooks = NO_HOOKS,  # message stored, message routed (issue 16 item 6): told by the dispatcher
    ) -> None:
        self._db = db
        self._queue = queue
        self._config = config
        self._gate = gate
        self._feed = feed
        self._metrics = metrics
        self._clock: Clock = clock or SystemClock()
        self._on_stored = on_stored
        self._dispatcher = Dispatcher(
            db.store,
            registry,
            DispatchConfig(
                poll_batch=config.poll_batch,
                bot_names=config.bot_names,
                impulse=config.impulse,
                onboarding=config.onboarding,
                auth=config.auth,
                timezone=config.timezone,
            ),
            metrics=metrics,
            clock=self._clock,
            hooks=hooks,
        )
        self._settle = Settle(self._clock, config.settle_max)
        self._wake = asyncio.Event()
        self._cursor: int | None = None
        self._watched = 0  # the highest seq the watch has looked at (_stored_elsewhere)
        self._held_lanes: dict[str, set[Lane]] = {}
        self._settling: dict[Lane, asyncio.Task[None]] = {}
        # lanes released while the loop reads a backlog, in order: enqueued once it has caught up (or after
        # _BACKLOG_HOLD), so that each takes all of its rows in one run instead of its first few now and the rest later
        self._backlog: dict[Lane, None] = {}
        self._behind_since: float | None = None
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
    def run_ended(self, jid: str, answered: str) -> None:
        """A run of ``jid`` ended (its runner says): the chat's next message is a new turn, not more of a burst, and
        the feed's listeners of the chat it ``answered`` (a delegate's: the first chat) look at their messages'
        statuses again."""
        self._settle.ended(jid)
        self._feed.run_ended(answered)

    def settle_delay(self, jid: str) -> float:
        """Seconds a lane of ``jid`` made ready now would wait for more of its messages (:mod:`.settle`)."""
        return self._settle.delay(jid)

    def wake(self) -> None:
        """Tick now instead of at the next poll (safe from any thread)."""
        if self._loop is None or _running_loop() is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick until ``stopping`` is set; a failing tick is logged and retried with backoff, never fatal."""
        try:
            while not stopping.is_set():
                self._wake.clear()
                delay = self._next_wait()
                if self.fenced:
                    await nap(self._wake, stopping, self._clock, self._config.poll_interval)
                    continue
                try:
                    read = await self.tick()
                except Exception as exc:
                    delay = self._failed(exc)
                else:
                    if self._failures:
                        logger.info("loop recovered after %d failed ticks", self._failures)
                    self._failures = 0
                    if self._config.tick_gap > 0 and 0 < read < self._config.poll_batch:
                        # cut short by stopping only: a wake-up meanwhile is kept for the tick after the gap
                        await unless_stopped(self._clock.sleep(self._config.tick_gap), stopping)
                await self._wait(stopping, delay)
        finally:
            for task in self._settling.values():
                task.cancel()

    async def tick(self) -> int:
        """One pass (module docstring, steps 1–4); returns how many rows were read."""
        began = time.perf_counter()
        if self._bridge is None:
            self._loop = asyncio.get_running_loop()
            self._bridge = QueueBridge(self._queue, self._loop)
        if self._cursor is None:
            self._cursor = await self._db.once(self._db.store.start_cursor)
        work: TickWork = await self._db.once(self._dispatcher.tick, self._cursor, self._bridge)
        full = len(work.rows) == self._config.poll_batch
        if full and self._behind_since is None:
            self._behind_since = self._clock.monotonic()
        if work.rows:
            self._cursor = work.rows[-1].seq
            self._publish(work.rows)
            self._admit(work.admitted)
            # what this tick stored itself, and replies other processes stored for a deliverer
            fresh = work.stored + [
                row for row in work.rows if row.direction == "out" and row.delivery_status == "pending"
            ]
            if fresh:
                self._on_stored(fresh)
        for jid in self._gate.tick(self._gate_now()):
            self._release(jid)
        self._release_backlog(caught_up=not full)
        if self._sweep_due():
            await self._sweep()
        self._observe(time.perf_counter() - began)
        if len(work.rows) == self._config.poll_batch:
            self._wake.set()  # a full batch: more are waiting, read on without sleeping
        return len(work.rows)

    def _failed(self, exc: Exception) -> float:
        self._failures += 1
        delay = _TICK_BACKOFF.delay(self._failures)
        if self._failures == 1:
            logger.exception("loop tick failed; backing off (the batch will be read again)")
        else:
            logger.warning("loop tick failed again (%d in a row): %s; next try in %.1fs", self._failures, exc, delay)
        return delay

    # ------------------------------------------------------------------------------------------------ lanes
    def _publish(self, rows: Sequence[Message]) -> None:
        for row in rows:
            if row.chat_jid.startswith("web:"):
                self._feed.publish(row)

    def _admit(self, admitted: Sequence[Admitted], now: float | None = None) -> None:
        for item in admitted:
            self._held_lanes.setdefault(item.chat_jid, set()).add(item.lane)
            self._settle.arrived(item.chat_jid)
            at = self._gate_now() if now is None else now
            if self._gate.offer(item.chat_jid, item.verb, item.seq, at, item.impulse):
                self._release(item.chat_jid)

    def _release(self, jid: str) -> None:
        for lane in sorted(self._held_lanes.pop(jid, ())):
            self._enqueue(lane, self._settle.delay(jid))

    def _enqueue(self, lane: Lane, settle: float) -> None:
        """Enqueue ``lane`` now, once the loop has caught up with a backlog, or once its chat has settled (a lane
        already queued or running needs no wait)."""
        if self._behind_since is not None and not self._queue.active(lane):
            self._backlog[lane] = None
            return
        if settle <= 0 or lane in self._settling or self._queue.active(lane):
            if lane not in self._settling:
                self._queue.enqueue(lane)
            return
        self._settling[lane] = asyncio.create_task(self._enqueue_later(lane, settle), name=f"kanmon-settle-{lane}")

    def _release_backlog(self, *, caught_up: bool) -> None:
        if self._behind_since is None:
            return
        if not caught_up and self._clock.monotonic() - self._behind_since < _BACKLOG_HOLD:
            return
        lanes, self._backlog = list(self._backlog), {}
        self._behind_since = None if caught_up else self._clock.monotonic()
        for lane in lanes:
            self._queue.enqueue(lane)

    async def _enqueue_later(self, lane: Lane, settle: float) -> None:
        try:
            await self._clock.sleep(settle)
        finally:
            self._settling.pop(lane, None)
        self._queue.enqueue(lane)

    def _sweep_due(self) -> bool:
        now = self._clock.monotonic()
        if self._last_sweep is not None and now - self._last_sweep < self._config.poll_interval * 0.9:
            return False
        self._last_sweep = now
        return True

    async def _sweep(self) -> None:
        recovering = self.ticks == 0
        heads: list[LaneHead] = await self._db.once(self._db.store.lane_heads)
        self._waiting = sum(head.count for head in heads)
        busy = set(self._queue.running()) | set(self._queue.waiting()) | set(self._queue.backing_off())
        busy |= set(self._settling) | set(self._backlog)
        for head in heads:
            lane = lane_of(head)
            if recovering:
                await self._recover(head)
            elif self._gate.lets_through(head.chat_jid, head.first_seq) and lane not in busy:
                self._queue.enqueue(lane)
                busy.add(lane)

    async def _recover(self, head: LaneHead) -> None:
        """Rebuild the gate's hold of one stream from its stored rows, each offered at the time it arrived."""
        rows: list[tuple[Admitted, float]] = await self._db.once(self._held_rows, head)
        for item, arrived in rows:
            self._admit([item], arrived)
        if rows and self._gate.holding(head.chat_jid) is None:
            self._queue.enqueue(rows[0][0].lane)  # it fired, or its hold ran out while gated was down

    def _held_rows(self, head: LaneHead) -> list[tuple[Admitted, float]]:
        assert self._bridge is not None
        ctx = self._dispatcher.context(self._bridge)
        lane = lane_of(head)
        admitted = []
        for row in self._db.store.lane_batch(head, _RECOVERY_ROWS):
            impulse = stored_impulse(ctx, row.chat_jid, row.sender, row.verb)
            admitted.append((Admitted(row.chat_jid, row.verb, row.seq, lane, impulse), row.received_at.timestamp()))
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
        """Until the next tick: ``seconds``, or less when woken, when stopping, when fenced, or when a check every
        ``watch_interval`` finds an inbound row another process stored (after a good tick only: a failing one keeps
        its backoff)."""
        watch = self._config.watch_interval
        if watch <= 0 or self._cursor is None or self._failures:
            await nap(self._wake, stopping, self._clock, seconds)
            return
        deadline = self._clock.monotonic() + seconds
        while (left := deadline - self._clock.monotonic()) > 0:
            await nap(self._wake, stopping, self._clock, min(left, watch))
            if self._wake.is_set() or stopping.is_set() or self.fenced or left <= watch:
                return
            if await self._stored_elsewhere(self._cursor):
                return

    async def _stored_elsewhere(self, cursor: int) -> bool:
        try:
            found, self._watched = await self._db.once(self._db.store.inbound_after, max(cursor, self._watched))
        except StoreError:
            return False  # the next tick meets the same store and backs off as it does
        return found

    def _observe(self, seconds: float) -> None:
        self.ticks += 1
        self.last_tick_at = self._clock.monotonic()
        self._metrics.poll_seconds.observe(seconds)
        self._metrics.loop_last_tick.set(self._clock.now().timestamp())
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
