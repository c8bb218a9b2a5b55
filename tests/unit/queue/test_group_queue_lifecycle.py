"""GroupQueue control: ``/stop``, pause and resume, introspection, and graceful shutdown (SPEC §8, §14)."""

from __future__ import annotations

import asyncio

from kanmon.clock import FakeClock
from kanmon.queue import Lane, LaneResult, QueueCounts
from tests.log_lines import log_lines
from tests.unit.queue.queue_fakes import WAIT_LIMIT, FakeRuns, MakeQueue, settle

SUPPORT = Lane("support")
SALES = Lane("sales")
LEGAL = Lane("legal")


async def test_stop_asks_the_runtime_to_stop_a_running_lane(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    assert await queue.stop(SUPPORT) is True
    assert runs.stop_requests == [SUPPORT]


async def test_a_stopped_run_is_not_retried_even_when_it_ends_without_output(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    await queue.stop(SUPPORT)
    runs.finish(SUPPORT, LaneResult.RETRY)  # the killed container produced nothing
    await settle(queue)

    assert queue.backing_off() == {}
    assert runs.dead_letters == []
    assert runs.runs_of(SUPPORT) == 1


async def test_stop_answers_false_for_a_lane_that_is_not_running(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue(max_concurrent=1)
    queue.enqueue(SUPPORT)
    queue.enqueue(SALES)
    await runs.until_held(SUPPORT)

    assert await queue.stop(SALES) is False  # waiting, not running
    assert await queue.stop(LEGAL) is False  # unknown
    assert runs.stop_requests == []


async def test_a_failing_stop_callback_answers_false_and_is_logged(make_queue: MakeQueue, runs: FakeRuns) -> None:
    async def unreachable_runtime(_lane: Lane) -> None:
        raise ConnectionError("engine unreachable")

    runs.hold = True
    queue = make_queue(stop_run=unreachable_runtime)
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    with log_lines("kanmon.queue") as logged:
        assert await queue.stop(SUPPORT) is False

    [entry] = logged.matching("stop failed")
    assert entry["lane"] == entry["folder"] == "support"
    assert "ConnectionError: engine unreachable" in entry["exc"]


async def test_pause_keeps_new_runs_from_starting_until_resume(make_queue: MakeQueue, runs: FakeRuns) -> None:
    queue = make_queue()
    queue.pause()

    queue.enqueue(SUPPORT)
    queue.enqueue(SALES)
    await settle(queue)
    assert runs.starts == []
    assert queue.waiting() == [SUPPORT, SALES]
    assert queue.paused

    queue.resume()
    await settle(queue)
    assert runs.starts == [SUPPORT, SALES]
    assert not queue.paused


async def test_pause_lets_running_runs_finish(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    queue.pause()
    queue.enqueue(SUPPORT)
    runs.finish(SUPPORT)
    await settle(queue)

    assert runs.runs_of(SUPPORT) == 1
    assert queue.waiting() == [SUPPORT]


async def test_counts_report_running_waiting_and_backing_off_lanes(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue(max_concurrent=1)
    runs.script(LEGAL, LaneResult.RETRY)
    queue.enqueue(LEGAL)
    await settle(queue)
    runs.hold = True

    queue.enqueue(SUPPORT)
    queue.enqueue(SALES)
    await runs.until_held(SUPPORT)

    assert queue.counts() == QueueCounts(running=1, waiting=1, backing_off=1, max_concurrent=1, paused=False)
    assert queue.running() == [SUPPORT]
    assert queue.waiting() == [SALES]
    clock.advance(2.0)
    assert queue.backing_off() == {LEGAL: 3.0}

    clock.advance(3.0)  # the retry is due: LEGAL waits behind SALES, and no lane backs off any more
    async with asyncio.timeout(WAIT_LIMIT):
        while queue.backing_off():  # noqa: ASYNC110 - the woken retry runs at the next yields; no event tells of it
            await asyncio.sleep(0)
    assert queue.counts() == QueueCounts(running=1, waiting=2, backing_off=0, max_concurrent=1, paused=False)
    assert queue.waiting() == [SALES, LEGAL]


async def test_shutdown_lets_running_runs_finish_and_starts_no_new_ones(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    runs.hold = True
    queue = make_queue(max_concurrent=2)
    for lane in (SUPPORT, SALES, LEGAL):
        queue.enqueue(lane)
    await runs.until_held(SUPPORT, SALES)

    stopping = asyncio.create_task(queue.shutdown(30.0))
    await clock.wait_for_sleepers(1)  # the drain is waiting on its timeout
    runs.finish(SUPPORT)
    runs.finish(SALES)
    leftovers = await asyncio.wait_for(stopping, WAIT_LIMIT)

    assert leftovers == []
    assert runs.cancelled == []
    assert runs.runs_of(LEGAL) == 0
    assert queue.waiting() == []


async def test_shutdown_reports_and_detaches_runs_still_going_after_the_drain_timeout(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    queue.enqueue(SALES)
    await runs.until_held(SUPPORT, SALES)

    stopping = asyncio.create_task(queue.shutdown(30.0))
    await clock.wait_for_sleepers(1)
    runs.finish(SALES)
    clock.advance(30.0)
    leftovers = await asyncio.wait_for(stopping, WAIT_LIMIT)

    assert leftovers == [SUPPORT]
    assert runs.cancelled == [SUPPORT]
    assert queue.running() == []


async def test_a_second_shutdown_call_ends_the_drain_at_once(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    first = asyncio.create_task(queue.shutdown(30.0))
    await clock.wait_for_sleepers(1)
    second = await asyncio.wait_for(queue.shutdown(30.0), WAIT_LIMIT)

    assert second == [SUPPORT]
    assert await asyncio.wait_for(first, WAIT_LIMIT) == [SUPPORT]


async def test_a_forced_shutdown_does_not_wait(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    leftovers = await asyncio.wait_for(queue.shutdown(30.0, force=True), WAIT_LIMIT)

    assert leftovers == [SUPPORT]
    assert runs.cancelled == [SUPPORT]


async def test_shutdown_of_an_idle_queue_returns_at_once(make_queue: MakeQueue) -> None:
    queue = make_queue()

    assert await asyncio.wait_for(queue.shutdown(30.0), WAIT_LIMIT) == []


async def test_shutdown_cancels_pending_retries_and_ignores_later_enqueues(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue()
    runs.script(SUPPORT, LaneResult.RETRY)
    queue.enqueue(SUPPORT)
    await settle(queue)
    await clock.wait_for_sleepers(1)

    await queue.shutdown(30.0)
    queue.enqueue(SALES)
    await settle(queue)

    assert queue.backing_off() == {}
    assert clock.sleeping == []
    assert runs.starts == [SUPPORT]
