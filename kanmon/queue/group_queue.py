"""GroupQueue (SPEC §8): one run per lane at a time, at most ``max_concurrent`` runs overall, served fairly.

The queue only signals. ``enqueue(lane)`` says "this lane has work past its agent cursor"; when a slot is free the
queue awaits the injected ``run_lane(lane)``, which reads the rows, runs the agent and applies the outcome, then
reports a :class:`~kanmon.queue.lane.LaneResult`. The queue knows nothing of SQL, containers or HTTP.

The rules, and the anchor bugs they answer:

- A lane enqueued while it runs is marked to run once more after the current run; the next run takes everything
  past the cursor, so any number of enqueues during a run make exactly one follow-up. :meth:`GroupQueue.rerun`
  tells that follow-up from a turn asked for anew: the run before may have taken every row (a container's start
  lets the rows that asked for it join its batch), so a runner can look before it starts an agent for nothing.
- Runnable lanes wait in one FIFO, and a lane that finishes with more work joins the **back** of it. NanoClaw and
  arizuko restarted the finished group at once, ahead of everyone waiting, so a busy group starved the rest.
- A run that fails without output is run again after 5 s, 10 s, 20 s … (:class:`~kanmon.queue.backoff.RetryPolicy`);
  after ``max_attempts`` failed runs ``on_dead_letter(lane)`` is awaited (arizuko never retried; NanoClaw dropped
  the batch silently). A lane in backoff holds no slot, and enqueueing it again does not cut its backoff short:
  the poll loop re-enqueues every lane with rows past its cursor on every tick, so otherwise a backoff would never
  last longer than one tick. Attempts are counted from zero again after a success or a dead letter.
- A run that could not start because its runtime is unreachable (``DEFERRED``) is tried again after
  ``defer_delay`` without counting as an attempt, for as long as the outage lasts.
- An exception from a callback is logged and counts as a failure without output; the queue itself never dies.
- ``shutdown`` stops starting runs, lets running ones finish for ``drain_timeout``, then cancels the waiting tasks
  and reports their lanes. ``run_lane`` must treat that cancellation as "detach": leave the container running
  for the next gated to reclaim (SPEC §14), never stop it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from kanmon.clock import Clock, SystemClock
from kanmon.logcontext import bound
from kanmon.queue.backoff import RetryPolicy
from kanmon.queue.lane import Lane, LaneResult

__all__ = ["GroupQueue", "LaneHook", "QueueCounts", "RunLane"]

logger = logging.getLogger(__name__)

#: Runs one batch of a lane and says how it ended.
RunLane = Callable[[Lane], Awaitable[LaneResult]]
#: A notification about a lane (dead letter, stop request).
LaneHook = Callable[[Lane], Awaitable[None]]

# How long shutdown waits for cancelled run tasks to unwind; a task that ignores cancellation is reported, not awaited.
_CANCEL_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Numbers for ``/ping``, ``/status`` and metrics."""

    running: int
    waiting: int
    backing_off: int
    max_concurrent: int
    paused: bool


@dataclass(slots=True)
class _LaneState:
    running: bool = False
    again: bool = False  # enqueued while running: run once more afterwards
    rerun: bool = False  # this turn is that "once more" (the run before may have taken its rows already)
    stopping: bool = False  # /stop asked during this run: it ends as stopped, whatever it reports
    failures: int = 0  # consecutive runs that failed without output
    retry_at: float | None = None  # in backoff until then (clock time)
    timer: asyncio.Task[None] | None = None


class GroupQueue:
    """Lanes, the global cap, FIFO fairness, retries with backoff, ``/stop`` and graceful shutdown."""

    def __init__(
        self,
        run_lane: RunLane,
        *,
        on_dead_letter: LaneHook,
        stop_run: LaneHook,
        max_concurrent: int = 5,
        retry: RetryPolicy | None = None,
        defer_delay: float = 5.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self._run_lane = run_lane
        self._on_dead_letter = on_dead_letter
        self._stop_run = stop_run
        self._max = max_concurrent
        self._retry = retry or RetryPolicy()
        self._defer_delay = defer_delay
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._lanes: dict[Lane, _LaneState] = {}
        self._ready: deque[Lane] = deque()
        self._ready_set: set[Lane] = set()
        self._retrying: set[Lane] = set()  # lanes with a retry_at: counted every tick, so not found by a scan
        self._runs: dict[Lane, asyncio.Task[None]] = {}
        self._paused = False
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._abort_drain = asyncio.Event()
        self._closed = asyncio.Event()
        self._leftovers: list[Lane] = []

    # -- taking work -------------------------------------------------------------------------------------------------

    def enqueue(self, lane: Lane) -> None:
        """Note that ``lane`` has work; it runs when a slot is free, after the lanes already waiting."""
        if self._closing:
            logger.debug("lane=%s not enqueued: the queue is shutting down", lane)
            return
        state = self._lanes.setdefault(lane, _LaneState())
        if state.running:
            state.again = True
        elif state.retry_at is None:
            state.rerun = False  # asked for anew
            # In backoff the retry takes everything past the cursor anyway; see the module docstring.
            self._make_ready(lane)
            self._pump()

    async def stop(self, lane: Lane) -> bool:
        """Ask the runtime to stop ``lane``'s run (``/stop``); False when nothing runs there or the stop failed."""
        state = self._lanes.get(lane)
        if state is None or not state.running:
            return False
        # Marked first: the run may end because of the stop before stop_run returns, and must not be retried.
        state.stopping = True
        with _lane_ids(lane):
            try:
                await self._stop_run(lane)
            except Exception:
                logger.exception("stop failed")
                return False
            logger.info("stop requested")
        return True

    def pause(self) -> None:
        """Start no new runs until :meth:`resume` (the runtime is unreachable); running runs carry on."""
        if not self._paused:
            logger.warning("queue paused: no new runs start; %d lanes waiting", len(self._ready))
        self._paused = True
        self._update_idle()

    def resume(self) -> None:
        """Start runs again, waiting lanes first-come first-served."""
        if self._paused:
            logger.info("queue resumed; %d lanes waiting", len(self._ready))
        self._paused = False
        self._pump()

    # -- looking at it -----------------------------------------------------------------------------------------------

    def running(self) -> list[Lane]:
        """Lanes with a run in progress, oldest run first."""
        return list(self._runs)

    def waiting(self) -> list[Lane]:
        """Lanes waiting for a slot, in the order they will start."""
        return list(self._ready)

    def rerun(self, lane: Lane) -> bool:
        """True while ``lane``'s turn is the one more it was given because it was enqueued while its run went on,
        and nothing asked for it since: the run before may have taken every row (a runner may look before it
        starts an agent)."""
        state = self._lanes.get(lane)
        return state is not None and state.rerun

    def active(self, lane: Lane) -> bool:
        """True while ``lane`` runs or waits for a slot (O(1))."""
        return lane in self._runs or lane in self._ready_set

    def backing_off(self) -> dict[Lane, float]:
        """Lanes waiting to retry a failed run, with the seconds left before they become runnable."""
        now = self._clock.monotonic()
        retry_at = {lane: self._lanes[lane].retry_at for lane in self._retrying}
        return {lane: max(0.0, at - now) for lane, at in retry_at.items() if at is not None}

    def failures(self, lane: Lane) -> int:
        """Consecutive runs of ``lane`` that failed without output so far (the next run is attempt ``failures + 1``)."""
        state = self._lanes.get(lane)
        return 0 if state is None else state.failures

    def counts(self) -> QueueCounts:
        """Running, waiting and backing-off lane counts, the cap, and whether starting is paused."""
        return QueueCounts(len(self._runs), len(self._ready), len(self._retrying), self._max, self._paused)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    async def wait_idle(self) -> None:
        """Return once no run is in progress and none can start (lanes in backoff or a paused queue don't count)."""
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()

    # -- stopping ----------------------------------------------------------------------------------------------------

    async def shutdown(self, drain_timeout: float, *, force: bool = False) -> list[Lane]:
        """Start nothing more, let runs finish for ``drain_timeout`` s, then cancel the rest; returns their lanes.

        A second call (or ``force=True``) ends the wait at once. Cancelled runs are detached, not stopped.
        """
        if self._closing:
            self._abort_drain.set()
            await self._closed.wait()
            return list(self._leftovers)
        self._closing = True
        if force:
            self._abort_drain.set()
        await self._forget_pending()
        logger.info("queue shutting down: draining %d runs for up to %.1fs", len(self._runs), drain_timeout)
        await self._drain(drain_timeout)
        self._leftovers = list(self._runs)
        if self._leftovers:
            logger.warning(
                "queue drain ended with runs in progress; detaching lanes %s", ", ".join(map(str, self._leftovers))
            )
        await self._cancel_runs()
        self._closed.set()
        return list(self._leftovers)

    async def _forget_pending(self) -> None:
        timers = [state.timer for state in self._lanes.values() if state.timer is not None]
        for state in self._lanes.values():
            state.timer, state.retry_at, state.again = None, None, False
        self._retrying.clear()
        self._ready.clear()
        self._ready_set.clear()
        self._update_idle()
        # Retries are not lost: their rows are still past the cursor, and the next gated's recovery enqueues them.
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)

    async def _drain(self, grace: float) -> None:
        if not self._runs:
            return
        waiters = [
            asyncio.create_task(self.wait_idle()),
            # On the injected clock, not asyncio.timeout: tests drive the drain with a fake clock.
            asyncio.create_task(self._clock.sleep(grace)),
            asyncio.create_task(self._abort_drain.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _cancel_runs(self) -> None:
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _done, stuck = await asyncio.wait(tasks, timeout=_CANCEL_GRACE)
        if stuck:
            logger.error("%d run tasks ignored cancellation at shutdown", len(stuck))

    # -- running -----------------------------------------------------------------------------------------------------

    def _make_ready(self, lane: Lane) -> None:
        if lane not in self._ready_set:
            self._ready.append(lane)
            self._ready_set.add(lane)

    def _pump(self) -> None:
        """Start waiting lanes, oldest first, while slots are free."""
        while self._ready and not self._paused and not self._closing and len(self._runs) < self._max:
            lane = self._ready.popleft()
            self._ready_set.discard(lane)
            self._start(lane)
        self._update_idle()

    def _start(self, lane: Lane) -> None:
        state = self._lanes.setdefault(lane, _LaneState())
        # Whatever was enqueued until now is past the cursor and this run takes it.
        state.running, state.again, state.stopping = True, False, False
        self._runs[lane] = asyncio.create_task(self._run(lane, state), name=f"kanmon-lane-{lane}")
        logger.debug("lane=%s run started (%d running)", lane, len(self._runs))

    async def _run(self, lane: Lane, state: _LaneState) -> None:
        retry_in: float | None = None
        try:
            # every line about this run carries its lane and attempt (this task's context, not the caller's)
            with _lane_ids(lane, attempt=state.failures + 1):
                result = await self._call_run_lane(lane)
                if state.stopping:
                    result = LaneResult.STOPPED
                retry_in, dead = self._account(lane, state, result)
                if dead:
                    await self._dead_letter(lane)
        finally:
            # Synchronous, so a cancellation cannot interrupt it halfway: the slot is always released.
            self._finish(lane, state, retry_in)

    async def _call_run_lane(self, lane: Lane) -> LaneResult:
        try:
            result = await self._run_lane(lane)
        except Exception:
            logger.exception("run raised; counted as a failure without output")
            return LaneResult.RETRY
        if not isinstance(result, LaneResult):
            logger.error("run returned %r, not a LaneResult; counted as a failure", result)
            return LaneResult.RETRY
        return result

    def _account(self, lane: Lane, state: _LaneState, result: LaneResult) -> tuple[float | None, bool]:
        """Count the result: (seconds until a retry or None, whether to dead-letter now)."""
        if result is LaneResult.DEFERRED:
            logger.info("deferred: the runtime is unavailable; trying again in %.1fs", self._defer_delay)
            return self._defer_delay, False
        if result is LaneResult.RETRY:
            state.failures += 1
            if not self._retry.gives_up_after(state.failures):
                delay = self._retry.delay(state.failures, self._rng)
                logger.warning(
                    "failed without output (%d of %d attempts); retrying in %.1fs",
                    state.failures,
                    self._retry.max_attempts,
                    delay,
                )
                return delay, False
        if result is LaneResult.RETRY:
            logger.error("failed %d times without output; dead-lettering its batch", state.failures)
        elif result is LaneResult.DEAD:
            logger.error("failed for good; dead-lettering its batch")
        state.failures = 0
        return None, result in (LaneResult.RETRY, LaneResult.DEAD)

    async def _dead_letter(self, lane: Lane) -> None:
        try:
            await self._on_dead_letter(lane)
        except Exception:
            logger.exception("dead-letter callback failed")

    def _finish(self, lane: Lane, state: _LaneState, retry_in: float | None) -> None:
        self._runs.pop(lane, None)
        state.running = state.stopping = state.rerun = False
        if self._closing:
            state.again = False
        elif retry_in is not None:
            state.again = False  # the retry takes everything past the cursor, new rows included
            self._schedule_retry(lane, state, retry_in)
        elif state.again:
            state.again, state.rerun = False, True
            self._make_ready(lane)  # behind every lane that was already waiting
        if not state.running and state.retry_at is None and state.failures == 0 and lane not in self._ready_set:
            del self._lanes[lane]  # nothing to remember: keep the table as small as the live lanes
        self._pump()

    def _schedule_retry(self, lane: Lane, state: _LaneState, delay: float) -> None:
        state.retry_at = self._clock.monotonic() + delay
        self._retrying.add(lane)
        state.timer = asyncio.create_task(self._retry_later(lane, state, delay), name=f"kanmon-retry-{lane}")

    async def _retry_later(self, lane: Lane, state: _LaneState, delay: float) -> None:
        await self._clock.sleep(delay)
        state.retry_at = state.timer = None
        self._retrying.discard(lane)
        if not self._closing:
            self._make_ready(lane)
            self._pump()

    # -- idleness ----------------------------------------------------------------------------------------------------

    def _is_idle(self) -> bool:
        return not self._runs and (not self._ready or self._paused or self._closing)

    def _update_idle(self) -> None:
        if self._is_idle():
            self._idle.set()
        else:
            self._idle.clear()


def _lane_ids(lane: Lane, attempt: int | None = None) -> AbstractContextManager[None]:
    """The ids of the lines logged about ``lane`` (:mod:`kanmon.logcontext`)."""
    return bound(lane=str(lane), folder=lane.folder, attempt=attempt)
