"""GroupQueue retries (SPEC §8): backoff on the injected clock, dead letters, fresh starts, and callbacks that raise."""

from __future__ import annotations

import asyncio

import pytest

from kanmon.clock import FakeClock
from kanmon.queue import Lane, LaneResult, RetryPolicy
from tests.log_lines import log_lines
from tests.unit.queue.queue_fakes import FakeRuns, MakeQueue, settle

SUPPORT = Lane("support")
SALES = Lane("sales")
RETRY, OK, DEAD = LaneResult.RETRY, LaneResult.OK, LaneResult.DEAD


async def advance_to_retry(clock: FakeClock, queue_lane_delay: float) -> None:
    """Advance exactly to the retry deadline, once the retry timer is really asleep."""
    await clock.wait_for_sleepers(1)
    clock.advance(queue_lane_delay)


async def test_failed_runs_retry_after_5_10_and_20_seconds(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue(retry=RetryPolicy(max_attempts=4))
    runs.script(SUPPORT, RETRY, RETRY, RETRY, OK)
    queue.enqueue(SUPPORT)

    for runs_so_far, delay in [(1, 5.0), (2, 10.0), (3, 20.0)]:
        await settle(queue)
        await clock.wait_for_sleepers(1)
        assert queue.backing_off() == {SUPPORT: delay}
        assert queue.failures(SUPPORT) == runs_so_far
        # A moment before the deadline nothing happens
        clock.advance(delay - 0.25)
        await asyncio.sleep(0)
        assert runs.runs_of(SUPPORT) == runs_so_far
        assert clock.sleeping == [clock.monotonic() + 0.25]
        # At the deadline the retry starts
        clock.advance(0.25)
        await runs.until_runs(SUPPORT, runs_so_far + 1)

    await settle(queue)
    assert queue.backing_off() == {}
    assert queue.failures(SUPPORT) == 0
    assert runs.dead_letters == []


async def test_a_lane_is_dead_lettered_after_max_attempts_failed_runs(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue()  # max_attempts 3
    runs.script(SUPPORT, RETRY, RETRY, RETRY)

    queue.enqueue(SUPPORT)
    await settle(queue)
    await advance_to_retry(clock, 5.0)
    await runs.until_runs(SUPPORT, 2)
    await settle(queue)
    await advance_to_retry(clock, 10.0)
    await runs.until(lambda: runs.dead_letters == [SUPPORT])
    await settle(queue)

    assert runs.runs_of(SUPPORT) == 3
    assert queue.backing_off() == {}
    assert clock.sleeping == []


async def test_a_new_enqueue_after_a_dead_letter_starts_with_fresh_attempts(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue(retry=RetryPolicy(max_attempts=1))
    runs.script(SUPPORT, RETRY, RETRY)
    queue.enqueue(SUPPORT)
    await settle(queue)
    assert runs.dead_letters == [SUPPORT]

    # When the next message arrives and its run fails too
    queue.enqueue(SUPPORT)
    await settle(queue)

    # Then it is dead-lettered after one attempt again, not at once on stale counts
    assert runs.runs_of(SUPPORT) == 2
    assert runs.dead_letters == [SUPPORT, SUPPORT]


async def test_attempts_count_from_zero_again_after_a_success(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue()
    runs.script(SUPPORT, RETRY, OK, RETRY)
    queue.enqueue(SUPPORT)
    await settle(queue)
    await advance_to_retry(clock, 5.0)
    await runs.until_runs(SUPPORT, 2)
    await settle(queue)

    queue.enqueue(SUPPORT)
    await settle(queue)

    assert queue.backing_off() == {SUPPORT: 5.0}


async def test_enqueueing_a_lane_in_backoff_does_not_cut_the_backoff_short(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    queue = make_queue()
    runs.script(SUPPORT, RETRY)
    queue.enqueue(SUPPORT)
    await settle(queue)

    queue.enqueue(SUPPORT)
    queue.enqueue(SUPPORT)
    await settle(queue)

    assert runs.runs_of(SUPPORT) == 1
    assert queue.waiting() == []
    assert queue.backing_off() == {SUPPORT: 5.0}
    await advance_to_retry(clock, 5.0)
    await runs.until_runs(SUPPORT, 2)
    await settle(queue)
    assert runs.runs_of(SUPPORT) == 2


async def test_work_arriving_during_a_failed_run_is_taken_by_the_retry(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)
    queue.enqueue(SUPPORT)

    runs.finish(SUPPORT, RETRY)
    await settle(queue)

    assert runs.runs_of(SUPPORT) == 1
    assert queue.backing_off() == {SUPPORT: 5.0}


async def test_other_lanes_run_while_one_backs_off(make_queue: MakeQueue, runs: FakeRuns) -> None:
    queue = make_queue(max_concurrent=1)
    runs.script(SUPPORT, RETRY)

    queue.enqueue(SUPPORT)
    queue.enqueue(SALES)
    await settle(queue)

    assert runs.starts == [SUPPORT, SALES]
    assert queue.counts().backing_off == 1
    assert queue.counts().running == 0


async def test_a_dead_result_is_dead_lettered_without_retrying(make_queue: MakeQueue, runs: FakeRuns) -> None:
    queue = make_queue()
    runs.script(SUPPORT, DEAD)

    queue.enqueue(SUPPORT)
    await settle(queue)

    assert runs.dead_letters == [SUPPORT]
    assert queue.backing_off() == {}


async def test_an_exception_in_a_run_counts_as_a_failure_and_the_queue_keeps_going(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    queue = make_queue()
    runs.script(SUPPORT, RuntimeError("runtime exploded"))

    with log_lines("kanmon.queue") as logged:
        queue.enqueue(SUPPORT)
        await settle(queue)
    queue.enqueue(SALES)
    await settle(queue)

    assert queue.backing_off() == {SUPPORT: 5.0}
    assert runs.runs_of(SALES) == 1
    [entry] = [entry for entry in logged.entries if "exc" in entry]
    assert (entry["lane"], entry["folder"], entry["attempt"]) == ("support", "support", 1)  # bound by the queue
    assert entry["exc"].endswith("RuntimeError: runtime exploded")


async def test_a_run_returning_something_else_than_a_result_counts_as_a_failure(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    async def confused(_lane: Lane) -> LaneResult:
        return None  # type: ignore[return-value]

    queue = make_queue(run_lane=confused)  # a callback with the wrong return type, as untyped code might pass

    queue.enqueue(SUPPORT)
    await settle(queue)

    assert queue.backing_off() == {SUPPORT: 5.0}


async def test_a_failing_dead_letter_callback_is_logged_and_the_lane_runs_again_later(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    async def broken_dead_letter(_lane: Lane) -> None:
        raise ConnectionError("store down")

    queue = make_queue(on_dead_letter=broken_dead_letter, retry=RetryPolicy(max_attempts=1))
    runs.script(SUPPORT, RETRY)

    with log_lines("kanmon.queue") as logged:
        queue.enqueue(SUPPORT)
        await settle(queue)
    queue.enqueue(SUPPORT)
    await settle(queue)

    assert [entry["lane"] for entry in logged.matching("dead-letter callback failed")] == ["support"]
    assert runs.runs_of(SUPPORT) == 2


async def test_jittered_delays_come_from_the_injected_random_generator(make_queue: MakeQueue, runs: FakeRuns) -> None:
    import random

    queue = make_queue(retry=RetryPolicy(jitter=1.0), rng=random.Random(1337))
    runs.script(SUPPORT, RETRY)

    queue.enqueue(SUPPORT)
    await settle(queue)

    expected = 5.0 + random.Random(1337).uniform(0.0, 1.0)
    assert queue.backing_off() == {SUPPORT: pytest.approx(expected)}


async def test_a_deferred_run_is_tried_again_without_counting_as_an_attempt(
    make_queue: MakeQueue, runs: FakeRuns, clock: FakeClock
) -> None:
    # the runtime is down for many more tries than max_attempts: the batch must not be dead-lettered by the outage
    queue = make_queue(defer_delay=5.0)  # max_attempts 3
    runs.script(SUPPORT, *[LaneResult.DEFERRED] * 6, RETRY, OK)
    queue.enqueue(SUPPORT)
    for tries in range(1, 7):
        await settle(queue)
        await clock.wait_for_sleepers(1)
        assert queue.backing_off() == {SUPPORT: 5.0}
        assert queue.failures(SUPPORT) == 0
        clock.advance(5.0)
        await runs.until_runs(SUPPORT, tries + 1)
    await settle(queue)
    assert queue.failures(SUPPORT) == 1  # the first real failure is attempt 1
    await advance_to_retry(clock, 5.0)
    await runs.until_runs(SUPPORT, 8)
    await settle(queue)
    assert runs.dead_letters == []
