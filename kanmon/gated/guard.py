"""The store lock as a fence (SPEC §14): take it, keep checking it, and stop everything the moment it is lost.

One gated per store is what keeps every message answered once. The lock (:class:`~kanmon.store.lock.StoreLock`)
can be lost while gated lives: a PostgreSQL restart ends every session and with it the session's advisory lock,
and gated's connection pool reconnects as if nothing happened. So :class:`StoreGuard`

1. takes the lock at start, waiting while the database is unreachable (a supervisor must not crash-loop through an
   outage) and, for ``gated run --standby``, while another gated holds it (taking over within a check interval or
   two of the holder's death);
2. bumps the store's lock epoch (:meth:`~kanmon.store.Store.take_epoch`): from then on every write that routes,
   runs or delivers checks the epoch in its own transaction, so a gated that was overtaken can no longer change
   anything, even before it has noticed;
3. checks the lock every ``check_interval`` seconds; when it is lost it fences the gateway at once (no routing, no
   new runs, no deliveries) and takes the lock back: if nobody else held the store meanwhile (the epoch did not move)
   it carries on; if another gated holds it now, or held it meanwhile, it raises :class:`Overtaken` and gated stops
   gracefully (exit 3), leaving its containers running for the holder to reclaim.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from kanmon.clock import Clock, SystemClock
from kanmon.store import StoreFenced
from kanmon.store.aio import AsyncStore
from kanmon.store.lock import StoreLock, StoreLocked

__all__ = ["Fenceable", "Overtaken", "StoreGuard"]

logger = logging.getLogger(__name__)


class Overtaken(StoreLocked):
    """Another gated holds the store now, or held it while this one was cut off: this one must stop (exit 3)."""


class Fenceable(Protocol):
    """What the guard stops and starts: the gateway."""

    def fence(self, reason: str) -> None:
        """Stop routing, starting runs and delivering at once; say ``reason`` when asked why not ready."""

    def unfence(self) -> None:
        """Carry on after :meth:`fence`."""


class StoreGuard:
    """Takes and keeps the store lock for one gated; see the module docstring."""

    def __init__(
        self,
        db: AsyncStore,
        lock: StoreLock,
        *,
        check_interval: float = 1.0,
        standby: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._lock = lock
        self._interval = check_interval
        self._standby = standby
        self._clock: Clock = clock or SystemClock()
        #: Why this gated does not serve yet (waiting for the database or for the lock), for ``/readyz``.
        self.waiting: str | None = "starting: taking the store lock"

    async def take(self) -> None:
        """Take the lock; raises :class:`StoreLocked` if another gated holds it (unless standing by).

        Waits while the database is unreachable, and in standby while another gated holds the lock.
        """
        announced = False
        while True:
            try:
                await self._db.retrying(self._lock.acquire)
                return
            except StoreLocked as exc:
                if not self._standby:
                    raise
                self.waiting = f"standby: {exc}"
                if not announced:
                    logger.warning("standby: %s; taking over as soon as it stops", exc)
                    announced = True
            await self._clock.sleep(self._interval)

    async def fence_writes(self) -> int:
        """Bump the store's lock epoch (after :meth:`take` and migrations); returns it. Gated is active from here."""
        epoch = await self._db.retrying(self._db.store.take_epoch)
        self.waiting = None
        logger.info("holding the store (%s, lock epoch %d)", self._lock.holder, epoch)
        return epoch

    async def keep(self, gateway: Fenceable, stopping: asyncio.Event) -> None:
        """Check the lock until ``stopping`` is set; fence ``gateway`` while it is lost; raise :class:`Overtaken`."""
        while not stopping.is_set():
            await self._wait(stopping)
            if stopping.is_set():
                return
            problem = await self._db.once(self._lock.check)
            if problem is None:
                continue
            logger.error("store lock lost: %s; no routing, runs or deliveries until it is taken back", problem)
            gateway.fence(f"store lock lost: {problem}")
            self.waiting = f"store lock lost: {problem}"
            await self._take_back()
            self.waiting = None
            gateway.unfence()
            logger.warning("store lock taken back; nobody held the store meanwhile: carrying on")

    def release(self) -> None:
        """Give the lock up (blocking, quick; at exit)."""
        self._lock.release()

    async def _take_back(self) -> None:
        previous = self._db.store.fence
        try:
            await self._db.retrying(self._lock.acquire)
        except StoreLocked as exc:
            raise Overtaken(f"another gated took the store over: {exc}") from None
        try:
            await self._db.retrying(self._db.store.take_epoch, previous)
        except StoreFenced as exc:
            await self._db.once(self._lock.release)
            raise Overtaken(f"{exc}; stopping so that no work is done twice") from None

    async def _wait(self, stopping: asyncio.Event) -> None:
        sleeping = asyncio.create_task(self._clock.sleep(self._interval))
        stopped = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait([sleeping, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, stopped):
                task.cancel()
