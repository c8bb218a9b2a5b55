"""Fakes for the queue tests: scripted run callbacks that record what the queue did, and a bounded wait."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from kanmon.queue import GroupQueue, Lane, LaneResult

# A safety net so a broken queue fails the test instead of hanging it; no test waits this long when it works.
WAIT_LIMIT = 5.0

Script = LaneResult | BaseException


class FakeRuns:
    """The gateway's side of the queue: records starts, overlaps and peaks; runs end as scripted or when released."""

    def __init__(self) -> None:
        self.starts: list[Lane] = []
        self.active: Counter[Lane] = Counter()
        self.peak = 0
        self.overlaps: list[Lane] = []
        self.cancelled: list[Lane] = []
        self.dead_letters: list[Lane] = []
        self.stop_requests: list[Lane] = []
        self.scripts: dict[Lane, list[Script]] = {}
        self.hold = False  # True: every run waits for `finish(lane)`
        self.on_start: Callable[[Lane], None] | None = None
        self._gates: dict[Lane, asyncio.Future[LaneResult]] = {}
        self._changed = asyncio.Event()

    def script(self, lane: Lane, *results: Script) -> None:
        """Make the next runs of ``lane`` end with ``results`` in order (then OK); an exception is raised."""
        self.scripts.setdefault(lane, []).extend(results)

    async def run(self, lane: Lane) -> LaneResult:
        """The ``run_lane`` callback."""
        if self.active[lane]:
            self.overlaps.append(lane)
        self.active[lane] += 1
        self.peak = max(self.peak, self.active.total())
        self.starts.append(lane)
        self._changed.set()
        try:
            if self.on_start is not None:
                self.on_start(lane)
            return await self._outcome(lane)
        except asyncio.CancelledError:
            self.cancelled.append(lane)
            raise
        finally:
            self.active[lane] -= 1
            self._changed.set()

    async def _outcome(self, lane: Lane) -> LaneResult:
        if self.hold:
            gate: asyncio.Future[LaneResult] = asyncio.get_running_loop().create_future()
            self._gates[lane] = gate
            self._changed.set()
            return await gate
        await asyncio.sleep(0)  # a real run yields at least once
        scripted = self.scripts.get(lane)
        outcome = scripted.pop(0) if scripted else LaneResult.OK
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def finish(self, lane: Lane, result: LaneResult = LaneResult.OK) -> None:
        """End ``lane``'s held run with ``result``."""
        self._gates.pop(lane).set_result(result)

    def held(self) -> list[Lane]:
        """Lanes whose runs are waiting for `finish`."""
        return list(self._gates)

    async def dead_letter(self, lane: Lane) -> None:
        """The ``on_dead_letter`` callback."""
        self.dead_letters.append(lane)
        self._changed.set()

    async def stop(self, lane: Lane) -> None:
        """The ``stop_run`` callback."""
        self.stop_requests.append(lane)
        self._changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds after some run started, was held or ended."""
        async with asyncio.timeout(WAIT_LIMIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def until_held(self, *lanes: Lane) -> None:
        """Wait until each of ``lanes`` has a run waiting for `finish`."""
        await self.until(lambda: all(lane in self._gates for lane in lanes))

    async def until_runs(self, lane: Lane, count: int) -> None:
        """Wait until ``count`` runs of ``lane`` have started."""
        await self.until(lambda: self.runs_of(lane) >= count)

    def runs_of(self, lane: Lane) -> int:
        """How many runs of ``lane`` started."""
        return self.starts.count(lane)


class MakeQueue(Protocol):
    """The `make_queue` fixture: a GroupQueue on the fake runs and clock, with keyword overrides."""

    def __call__(self, **overrides: Any) -> GroupQueue: ...


async def settle(queue: GroupQueue) -> None:
    """Wait (bounded) for the queue to have nothing running and nothing startable."""
    async with asyncio.timeout(WAIT_LIMIT):
        await queue.wait_idle()
