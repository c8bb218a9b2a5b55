"""GroupQueue scheduling: one run per lane, the global cap, follow-up runs, FIFO order and fairness (SPEC §2, §8)."""

from __future__ import annotations

from kanmon.queue import Lane, lane_for
from tests.unit.queue.queue_fakes import FakeRuns, MakeQueue, settle

SUPPORT = Lane("support")


def lanes(count: int) -> list[Lane]:
    return [Lane(f"group-{n}") for n in range(count)]


async def test_a_lane_never_has_two_runs_at_once(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()

    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)
    queue.enqueue(SUPPORT)
    queue.enqueue(SUPPORT)

    assert queue.running() == [SUPPORT]
    assert queue.waiting() == []
    assert runs.runs_of(SUPPORT) == 1
    runs.finish(SUPPORT)
    await runs.until_runs(SUPPORT, 2)
    runs.hold = False
    runs.finish(SUPPORT)
    await settle(queue)
    assert runs.overlaps == []


async def test_enqueues_during_a_run_make_exactly_one_follow_up_run(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)

    # When three messages arrive while the lane runs
    for _ in range(3):
        queue.enqueue(SUPPORT)
    runs.hold = False
    runs.finish(SUPPORT)
    await settle(queue)

    # Then one more run takes all of them
    assert runs.starts == [SUPPORT, SUPPORT]


async def test_two_chat_jids_of_one_folder_take_turns(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    telegram = lane_for("support", "telegram:-100123")
    discord = lane_for("support", "discord:8812")

    queue.enqueue(telegram)
    queue.enqueue(discord)
    await runs.until_held(telegram)

    assert telegram == discord
    assert queue.running() == [SUPPORT]
    assert runs.active.total() == 1


async def test_web_topics_of_one_folder_run_in_parallel(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    topic_a = lane_for("support", "web:support", "a")
    topic_b = lane_for("support", "web:support", "b")

    queue.enqueue(topic_a)
    queue.enqueue(topic_b)
    await runs.until_held(topic_a, topic_b)

    assert queue.running() == [topic_a, topic_b]


async def test_eight_busy_lanes_never_run_more_than_five_at_once(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue()
    busy = lanes(8)

    for lane in busy:
        queue.enqueue(lane)
    await runs.until_held(*busy[:5])
    assert queue.running() == busy[:5]
    assert queue.waiting() == busy[5:]

    # Each finished run frees one slot for the next waiting lane, never more
    for finished, starting in zip(busy[:3], busy[5:], strict=True):
        runs.finish(finished)
        await runs.until_held(starting)
        assert len(queue.running()) == 5
    for lane in busy[3:]:
        runs.finish(lane)
    await settle(queue)

    assert runs.peak == 5
    assert sorted(runs.starts) == sorted(busy)


async def test_the_cap_is_configurable(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue(max_concurrent=2)
    for lane in lanes(4):
        queue.enqueue(lane)
    await runs.until_held(*lanes(2))

    assert queue.counts().running == 2
    assert queue.counts().waiting == 2
    assert queue.counts().max_concurrent == 2


async def test_enqueueing_a_waiting_lane_again_keeps_its_place(make_queue: MakeQueue, runs: FakeRuns) -> None:
    runs.hold = True
    queue = make_queue(max_concurrent=1)
    first, second, third = lanes(3)

    queue.enqueue(first)
    queue.enqueue(second)
    queue.enqueue(third)
    queue.enqueue(second)

    assert queue.waiting() == [second, third]


async def test_waiting_lanes_start_first_come_first_served(make_queue: MakeQueue, runs: FakeRuns) -> None:
    queue = make_queue(max_concurrent=1)
    order = lanes(5)

    for lane in order:
        queue.enqueue(lane)
    await settle(queue)

    assert runs.starts == order


async def test_a_lane_with_more_work_goes_behind_the_lanes_already_waiting(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    runs.hold = True
    queue = make_queue(max_concurrent=1)
    busy, quiet_1, quiet_2 = lanes(3)
    queue.enqueue(busy)
    await runs.until_held(busy)

    # Given two lanes waiting and the running lane receiving more work
    queue.enqueue(quiet_1)
    queue.enqueue(quiet_2)
    queue.enqueue(busy)

    # When the running lane finishes
    runs.finish(busy)
    await runs.until_held(quiet_1)

    # Then it queues behind both
    assert queue.waiting() == [quiet_2, busy]


async def test_a_lane_with_more_work_runs_again_at_once_when_nobody_waits(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    runs.hold = True
    queue = make_queue(max_concurrent=1)
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)
    queue.enqueue(SUPPORT)

    runs.finish(SUPPORT)
    await runs.until_runs(SUPPORT, 2)

    assert queue.running() == [SUPPORT]


async def test_a_lane_with_constant_work_cannot_starve_ten_others(make_queue: MakeQueue, runs: FakeRuns) -> None:
    queue = make_queue(max_concurrent=1)
    chatty, others = Lane("chatty"), lanes(10)
    messages_left = 50

    def chatty_keeps_sending(_running: Lane) -> None:
        # A new message for `chatty` arrives during every run, whichever lane is running.
        nonlocal messages_left
        if messages_left:
            messages_left -= 1
            queue.enqueue(chatty)

    runs.on_start = chatty_keeps_sending
    queue.enqueue(chatty)
    for lane in others:
        queue.enqueue(lane)
    await settle(queue)

    # chatty's second run comes only after every other lane has had its turn
    second_chatty_run = runs.starts.index(chatty, 1)
    assert runs.starts[1:second_chatty_run] == others
    assert all(runs.runs_of(lane) == 1 for lane in others)
    # and it alternates with nobody afterwards because nobody else waits
    assert set(runs.starts[second_chatty_run:]) == {chatty}


async def test_wait_idle_returns_at_once_for_an_empty_queue(make_queue: MakeQueue) -> None:
    queue = make_queue()

    await settle(queue)

    assert queue.running() == []
    assert queue.waiting() == []


async def test_the_follow_up_turn_is_told_apart_from_a_turn_asked_for_anew(
    make_queue: MakeQueue, runs: FakeRuns
) -> None:
    """The runner looks before starting an agent only on the follow-up: its run before may have taken the rows."""
    runs.hold = True
    other = Lane("other")
    queue = make_queue(max_concurrent=1)
    queue.enqueue(SUPPORT)
    await runs.until_held(SUPPORT)
    assert not queue.rerun(SUPPORT)  # asked for anew
    queue.enqueue(SUPPORT)  # during its run
    runs.finish(SUPPORT)
    await runs.until_runs(SUPPORT, 2)
    assert queue.rerun(SUPPORT)  # the follow-up
    queue.enqueue(other)
    queue.enqueue(SUPPORT)  # during the follow-up: one more follow-up
    runs.finish(SUPPORT)
    await runs.until_held(other)
    assert queue.waiting() == [SUPPORT] and queue.rerun(SUPPORT)
    queue.enqueue(SUPPORT)  # asked for anew while it waits (by the loop, for rows of its own)
    assert not queue.rerun(SUPPORT)
    runs.finish(other)
    await runs.until_runs(SUPPORT, 3)
    assert not queue.rerun(SUPPORT)
    runs.hold = False
    runs.finish(SUPPORT)
    await settle(queue)
    assert not queue.rerun(SUPPORT)
