"""A run's replies, stored as they stream, many per transaction, and no more than the cap (SPEC §9, hardening item 9).

Each output an agent writes for the chat becomes an outbound row keyed ``(run_id, output_index)``. The recorder
holds replies for a short window (or until ``max_pending`` wait) and then stores everything waiting in one
transaction; what is still waiting when the run ends is stored with its outcome, in the run's last transaction.

* A run's **first** window is ``first_flush_after`` (5 ms by default in :class:`~kanmon.gateway.spec.RunDefaults`):
  the first reply is what the chat is waiting for. A run that ends within it (an in-process agent, most local
  processes) still makes one transaction for its reply and its outcome; a container, whose engine takes tens of
  milliseconds after the agent's last write to report its exit, no longer holds its reply back for that long.
* **Later** windows are ``flush_after`` (50 ms): a chatty agent costs a few transactions a second, not one per line.

This is the linger of a batching producer (Kafka's ``linger.ms``, 5 ms by default since Kafka 4.0, KIP-1030): a
short wait that lets what comes together go together, without making the first item wait for the batch. A reply
seen in the store therefore no longer implies that its run has ended; the run's outcome, cursor and session follow
in its last transaction.

A run that reaches ``cap`` replies is stopped by its runner: one run can no longer flood a chat.

Storing can fail for reasons that are kanmon's, not the agent's (the store refusing a row): such a reply is
reported in :attr:`ReplyRecorder.problems`, counted as produced, and the run goes on. The store being unreachable
is waited out (the write is retried by the store facade); a fenced store (another gated took over) ends the run's
bookkeeping at once with :class:`~kanmon.store.StoreFenced`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from kanmon.clock import Clock
from kanmon.store import Message, NewMessage, StoreError, StoreFenced, StoreUnavailable

__all__ = ["ReplyRecorder"]

logger = logging.getLogger(__name__)

Write = Callable[[list[NewMessage]], Awaitable[list[Message]]]


class ReplyRecorder:
    """Batches one run's replies into few transactions; see the module docstring."""

    def __init__(
        self,
        write: Write,
        *,
        clock: Clock,
        cap: int,
        flush_after: float = 0.05,
        first_flush_after: float | None = None,
        max_pending: int = 256,
        on_stored: Callable[[list[Message]], None] = lambda rows: None,
    ) -> None:
        self._write = write
        self._clock = clock
        self.cap = cap
        self._flush_after = flush_after
        # the run's first window (module docstring); flush_after too when not given
        self._next_window = flush_after if first_flush_after is None else first_flush_after
        self._max_pending = max_pending
        self._on_stored = on_stored
        self._pending: list[NewMessage] = []
        self._timer: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None  # of a flush in the background, raised to the next caller
        #: replies the agent wrote for the chat (stored or not)
        self.produced = 0
        #: what kanmon could not store, one line each
        self.problems: list[str] = []

    @property
    def full(self) -> bool:
        """True once the run has written ``cap`` replies: its runner stops it, later replies are dropped."""
        return self.produced >= self.cap

    async def add(self, reply: NewMessage) -> None:
        """Take one reply (dropped once :attr:`full`); it is stored within the current window: ``first_flush_after``
        seconds for the run's first, ``flush_after`` for later ones."""
        self._raise_failure()
        if self.full:
            return
        self.produced += 1
        self._pending.append(reply)
        if len(self._pending) >= self._max_pending:
            await self.flush()
        elif self._timer is None:
            window, self._next_window = self._next_window, self._flush_after
            self._timer = asyncio.create_task(self._flush_later(window))

    async def flush(self) -> None:
        """Store what waits now (after any flush in flight)."""
        self._cancel_timer()
        if self._flushing is not None:
            await self._flushing
        if self._pending:
            batch, self._pending = self._pending, []
            self._flushing = asyncio.create_task(self._store(batch))
            try:
                await self._flushing
            finally:
                self._flushing = None

    async def close(self) -> list[NewMessage]:
        """Stop flushing and return what has not been stored yet, for the run's last transaction."""
        self._cancel_timer()
        if self._flushing is not None:
            await self._flushing
        self._raise_failure()
        pending, self._pending = self._pending, []
        return pending

    async def _flush_later(self, window: float) -> None:
        await self._clock.sleep(window)
        self._timer = None
        try:
            await self.flush()
        except Exception as exc:  # StoreFenced: the run's runner hears of it at its next step
            self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _store(self, batch: list[NewMessage]) -> None:
        try:
            stored = await self._write(batch)
        except (StoreFenced, StoreUnavailable):
            raise
        except StoreError as exc:
            first, last = batch[0].output_index, batch[-1].output_index
            self.problems.append(f"replies {first}..{last} could not be stored: {exc}")
            logger.error("replies %s..%s could not be stored: %s", first, last, exc)  # run_id: bound by the runner
            return
        self._on_stored(stored)

    async def abandon(self) -> None:
        """Drop everything (the run was detached or another gated holds the store now)."""
        self._cancel_timer()
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(BaseException):
                await self._flushing
        self._pending = []
