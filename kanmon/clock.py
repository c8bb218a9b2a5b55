"""The injected clock: every component that waits or timestamps takes a :class:`Clock` instead of calling ``time``.

:class:`SystemClock` is the real one. :class:`FakeClock` is virtual time for tests: ``monotonic()`` stands still
until :meth:`FakeClock.advance` moves it, and ``await sleep(n)`` returns only once time has been advanced past its
deadline, so a test of a 20 s backoff takes microseconds and never depends on how fast the machine is.
(freezegun is no substitute under asyncio: it either freezes the loop's own time or leaves it real.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Monotonic seconds for deadlines, aware UTC for timestamps, and a sleep that follows the same time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (zero or less: just yield to the loop)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``datetime.now(UTC)`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """Seconds from ``time.monotonic``."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, seconds))


@dataclass(order=True)
class _Sleeper:
    deadline: float
    order: int
    future: asyncio.Future[None] = field(compare=False)


_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """Virtual time for tests: nothing happens until :meth:`advance` says so."""

    def __init__(self, start: float = 0.0, *, wall_start: datetime = _EPOCH) -> None:
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self._sleepers: list[_Sleeper] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def monotonic(self) -> float:
        """The virtual time in seconds."""
        return self._now

    def now(self) -> datetime:
        """``wall_start`` plus the virtual time that has passed."""
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        """Wait until :meth:`advance` has moved the virtual time ``seconds`` forward."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        sleeper = _Sleeper(self._now + seconds, next(self._order), asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        self._changed.set()
        try:
            await sleeper.future
        finally:
            # A cancelled sleep must not linger: it would be counted by `sleeping` and woken for nothing.
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    def advance(self, seconds: float) -> None:
        """Move the virtual time forward and wake every sleeper whose deadline has come (they run at the next yield)."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        due = sorted(s for s in self._sleepers if s.deadline <= self._now)
        for sleeper in due:
            self._sleepers.remove(sleeper)
            if not sleeper.future.done():
                sleeper.future.set_result(None)

    @property
    def sleeping(self) -> list[float]:
        """Deadlines of the sleeps in progress, earliest first."""
        return sorted(s.deadline for s in self._sleepers)

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` sleeps are in progress: advance only after the sleeper is really asleep."""
        while len(self._sleepers) < count:
            self._changed.clear()
            await self._changed.wait()
