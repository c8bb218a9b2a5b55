"""A running (or reclaimed) run, watched: the timers, the output cap and the parser shared by all runtimes.

A runtime subclasses :class:`RunHandle` with five small hooks (read a chunk, terminate, kill, exit code,
release); everything the SPEC says about a run's life is here, once:

* every block (output, heartbeat, even an invalid one) resets the idle timer; stderr and stray text do not;
* the hard timer counts from the run's real start, also for a reclaimed run;
* on a timeout the run is stopped (SIGTERM, then kill after the grace period) and output keeps being read;
* past the output cap the run is killed;
* the last event is always :class:`Exited`, which says which of these ended the run and whether it had output;
* the run's resources (container, run directory) are released only after the caller has consumed ``Exited`` and
  asked for more; a caller that must record the outcome first stops at ``Exited`` and calls ``close()`` itself.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Final

from kanmon.container.events import Exited, ExitReason, Heartbeat, Output, RunEvent
from kanmon.container.protocol import (
    OUTPUT_LIMIT,
    REASONING_TAGS,
    CappedTail,
    InvalidBlock,
    OutputLimitExceeded,
    OutputParser,
    ParserEvent,
)

__all__ = ["STDERR", "STDOUT", "Chunk", "RunHandle"]

logger = logging.getLogger(__name__)

STDOUT: Final = 1
STDERR: Final = 2
Chunk = tuple[int, bytes]  # (STDOUT or STDERR, data)
_EOF: Final = None
_STOP_SLACK = 30.0  # seconds past the stop grace before a stopping run is killed outright


class RunHandle(abc.ABC):
    """One run: iterate it for events; ``stop()`` and ``kill()`` it from anywhere."""

    def __init__(
        self,
        *,
        run_id: str,
        instance: str,
        name: str,
        idle_timeout: float | None,
        timeout: float,
        stop_grace: float,
        started_at: float | None = None,
        output_limit: int | None = None,
        reasoning_tags: Sequence[str] = REASONING_TAGS,
    ) -> None:
        self.run_id = run_id
        self.instance = instance
        self.name = name
        self.idle_timeout = idle_timeout
        self.timeout = timeout
        self.stop_grace = stop_grace
        self.started_at = time.time() if started_at is None else started_at
        self._parser = OutputParser(
            output_limit=OUTPUT_LIMIT if output_limit is None else output_limit, reasoning_tags=reasoning_tags
        )
        self._stderr = CappedTail()
        self._reason: ExitReason | None = None
        self._delivered = 0
        self._ending: asyncio.Task[None] | None = None
        self._iterating = False
        self._released = False

    def elapsed(self) -> float:
        """Seconds since the run started (0 or more), on the runtime's own clock: ``started_at`` is the wall time
        the runtime (the process, the Docker engine) recorded, so only the wall clock can tell how long ago it was.
        The gateway measures a run's age through this, never by mixing ``started_at`` with its injected clock."""
        return max(time.time() - self.started_at, 0.0)

    # ------------------------------------------------------------------------------------------------ hooks
    @abc.abstractmethod
    async def _read(self) -> Chunk | None:
        """The next chunk of output, or None once the run's output has ended."""

    @abc.abstractmethod
    async def _terminate(self, grace: float) -> None:
        """Ask the run to end (SIGTERM) and kill it if it is still running after ``grace`` seconds."""

    @abc.abstractmethod
    async def _kill(self) -> None:
        """Kill the run now."""

    @abc.abstractmethod
    async def _exit_code(self) -> int | None:
        """The exit status once output has ended (None if it cannot be known)."""

    @abc.abstractmethod
    async def _release(self) -> None:
        """Remove what the run left behind (container, run directory); kill it first if it still runs."""

    def feed(self, payload: bytes) -> None:
        """Send the input document on the run's stdin, then EOF, in the background (never blocking the reader).

        Runtimes feed ``spec.stdin`` themselves at start; a spec with ``stdin=None`` leaves it to the caller, which
        may start the run first and decide its input afterwards (kanmon takes a lane's batch only once the run's
        container is up, so messages that arrive meanwhile join the batch). Call it once.
        """
        raise NotImplementedError(f"{type(self).__name__} takes its input at start only")

    async def _abandon(self) -> None:  # noqa: B027 - optional hook
        """Unblock a pending ``_read`` when the caller stops iterating early."""

    # ---------------------------------------------------------------------------------------------- control
    @property
    def reason(self) -> ExitReason | None:
        """Why the run is ending, once something (timer, cap, stop, kill) decided it."""
        return self._reason

    async def stop(self, grace: float | None = None) -> None:
        """End the run: SIGTERM, then kill after ``grace`` seconds (the spec's stop grace by default)."""
        self._decide(ExitReason.STOPPED)
        await self._terminate(self.stop_grace if grace is None else grace)

    async def kill(self) -> None:
        """Kill the run now."""
        self._decide(ExitReason.KILLED)
        await self._kill()

    async def close(self) -> None:
        """Release the run's resources (idempotent). Called by the event iterator after ``Exited`` was consumed."""
        if not self._released:
            self._released = True
            await self._release()

    def _decide(self, reason: ExitReason) -> None:
        # the first reason wins: a run stopped by its idle timer stays an idle timeout even if /stop follows
        if self._reason is None:
            self._reason = reason
            logger.info("ending: %s", reason.value)

    def _end_in_background(self, reason: ExitReason) -> None:
        self._decide(reason)
        if self._ending is None:
            action = self._kill() if reason is ExitReason.OUTPUT_LIMIT else self._terminate(self.stop_grace)
            self._ending = asyncio.create_task(action, name=f"kanmon-end-{self.run_id}")

    # ----------------------------------------------------------------------------------------------- events
    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self.events()

    async def events(self) -> AsyncGenerator[RunEvent, None]:
        """Outputs and heartbeats as they arrive, then one :class:`Exited`; the run is released after it."""
        if self._iterating:
            raise RuntimeError(f"the events of run {self.run_id} are already being read")
        self._iterating = True
        queue: asyncio.Queue[tuple[Chunk | None, float] | BaseException] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(queue), name=f"kanmon-read-{self.run_id}")
        try:
            async for event in self._watch(queue):
                yield event
            exited = await self._exited()
            yield exited
            await self.close()
        finally:
            if not pump.done():
                await self._abandon()
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _pump(self, queue: asyncio.Queue[tuple[Chunk | None, float] | BaseException]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (chunk := await self._read()) is not None:
                queue.put_nowait((chunk, loop.time()))  # stamped on arrival: a slow reader must not look idle
            queue.put_nowait((_EOF, loop.time()))
        except Exception as exc:
            queue.put_nowait(exc)

    async def _watch(
        self, queue: asyncio.Queue[tuple[Chunk | None, float] | BaseException]
    ) -> AsyncIterator[Output | Heartbeat]:
        loop = asyncio.get_running_loop()
        hard_deadline = loop.time() + self.timeout - self.elapsed()
        last_block = loop.time()
        while True:
            item = await self._next(queue, hard_deadline, last_block)
            if isinstance(item, BaseException):
                raise item
            chunk, arrived = item
            if chunk is None:
                break
            for event in self._consume(chunk):
                last_block = arrived
                if isinstance(event, Output | Heartbeat):
                    yield event
        for event in self._handle(self._parser.close()):
            if isinstance(event, Output | Heartbeat):
                yield event

    async def _next(
        self,
        queue: asyncio.Queue[tuple[Chunk | None, float] | BaseException],
        hard_deadline: float,
        last_block: float,
    ) -> tuple[Chunk | None, float] | BaseException:
        loop = asyncio.get_running_loop()
        while True:
            if self._reason is None and loop.time() >= hard_deadline:
                # checked before taking what is queued: a reader that falls behind must not stretch the run
                self._end_in_background(ExitReason.HARD_TIMEOUT)
            with contextlib.suppress(asyncio.QueueEmpty):
                return queue.get_nowait()
            if self._reason is not None:
                # already ending: wait for the output to end, and insist with a kill if the stop did not do it
                try:
                    return await asyncio.wait_for(queue.get(), self.stop_grace + _STOP_SLACK)
                except TimeoutError:
                    logger.warning("still running %.0fs after the stop; killing it", _STOP_SLACK)
                    await self._kill()
                    continue
            idle_deadline = last_block + self.idle_timeout if self.idle_timeout is not None else hard_deadline
            deadline = min(hard_deadline, idle_deadline)
            try:
                return await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                hard = loop.time() >= hard_deadline
                self._end_in_background(ExitReason.HARD_TIMEOUT if hard else ExitReason.IDLE_TIMEOUT)

    def _consume(self, chunk: Chunk) -> list[ParserEvent]:
        stream, data = chunk
        if stream == STDERR:
            self._stderr.append(data)
            return []
        return self._handle(self._parser.feed(data))

    def _handle(self, events: list[ParserEvent]) -> list[ParserEvent]:
        for event in events:
            if isinstance(event, Output) and event.deliverable:
                self._delivered += 1
            elif isinstance(event, InvalidBlock):
                logger.warning("skipped an output block (%s): %.200r", event.reason, event.body)
            elif isinstance(event, OutputLimitExceeded):
                logger.warning("output passed %d bytes; killing it", event.limit)
                self._end_in_background(ExitReason.OUTPUT_LIMIT)
        return events

    async def _exited(self) -> Exited:
        if self._ending is not None:
            await self._ending  # let the stop or kill finish before asking for the exit code
        code = await self._exit_code()
        reason = self._reason or (ExitReason.EXIT if code is not None else ExitReason.LOST)
        exited = Exited(
            code=code,
            reason=reason,
            outputs=self._parser.outputs,
            delivered=self._delivered,
            stderr=self._stderr.text(),
            stray=self._parser.stray.text(),
        )
        logger.info(
            "run %s exited: reason=%s code=%s outputs=%d delivered=%d",
            self.run_id,
            reason.value,
            code,
            exited.outputs,
            exited.delivered,
        )
        return exited
