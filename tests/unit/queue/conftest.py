"""Fixtures for the queue tests: a fake clock, scripted runs, and a factory for queues wired to both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kanmon.clock import FakeClock
from kanmon.queue import GroupQueue, RetryPolicy
from tests.unit.queue.queue_fakes import FakeRuns, MakeQueue


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runs() -> FakeRuns:
    return FakeRuns()


@pytest.fixture
async def make_queue(runs: FakeRuns, clock: FakeClock) -> AsyncIterator[MakeQueue]:
    """Build a GroupQueue on the fake runs and clock; each is shut down (forced) at the end of the test."""
    made: list[GroupQueue] = []

    def make(**overrides: Any) -> GroupQueue:
        options: dict[str, Any] = {
            "on_dead_letter": runs.dead_letter,
            "stop_run": runs.stop,
            "clock": clock,
            "retry": RetryPolicy(),
        }
        options.update(overrides)
        run_lane = options.pop("run_lane", runs.run)
        queue = GroupQueue(run_lane, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.shutdown(0, force=True)
