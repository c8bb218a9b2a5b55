"""A run's replies are stored as they stream, a few transactions a second (kanmon/gateway/recorder.py).

The store is a list of the batches written; time is the fake clock's, so "held for 50 ms" is asserted, not slept.
"""

from __future__ import annotations

import asyncio

from kanmon.clock import FakeClock
from kanmon.gateway.recorder import ReplyRecorder
from kanmon.store import Message, NewMessage

FLUSH = 0.05


class Writes:
    """Stands in for ``Store.record_replies`` behind the store facade: notes each batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, replies: list[NewMessage]) -> list[Message]:
        self.batches.append([int(reply.output_index or 0) for reply in replies])
        return []


def reply(index: int) -> NewMessage:
    return NewMessage(chat_jid="web:corp", content=f"r{index}", sender="corp", run_id="run-1", output_index=index)


async def advance(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    for _ in range(5):  # the woken timer, its flush and the write each take a turn of the loop
        await asyncio.sleep(0)


async def test_replies_wait_for_the_window_and_go_in_one_transaction() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH)
    for index in (0, 1, 2):
        await recorder.add(reply(index))
    await clock.wait_for_sleepers()
    await advance(clock, FLUSH / 2)
    assert writes.batches == []
    await advance(clock, FLUSH / 2)
    assert writes.batches == [[0, 1, 2]]
    await recorder.add(reply(3))  # a new window
    await clock.wait_for_sleepers()
    await advance(clock, FLUSH)
    assert writes.batches == [[0, 1, 2], [3]]
    assert await recorder.close() == []


async def test_a_run_that_ends_within_the_window_stores_its_replies_with_its_outcome() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH)
    await recorder.add(reply(0))
    await recorder.add(reply(1))
    taken = [pending.output_index for pending in await recorder.close()]
    assert taken == [0, 1]  # the run's last transaction takes them: no transaction of their own
    await advance(clock, FLUSH)
    assert writes.batches == []  # no transaction of its own


async def test_max_pending_replies_are_stored_without_waiting_and_a_full_run_drops_the_rest() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=5, flush_after=FLUSH, max_pending=2)
    for index in range(7):
        await recorder.add(reply(index))
    assert writes.batches == [[0, 1], [2, 3]]
    assert recorder.full and recorder.produced == 5
    assert [pending.output_index for pending in await recorder.close()] == [4]


FIRST = 0.005


async def test_the_first_reply_of_a_run_waits_only_the_first_window_and_later_ones_the_long_one() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH, first_flush_after=FIRST)
    await recorder.add(reply(0))
    await recorder.add(reply(1))  # within the first window: goes with it
    await clock.wait_for_sleepers()
    await advance(clock, FIRST)
    assert writes.batches == [[0, 1]]  # 5 ms, not 50: the chat is waiting for it
    await recorder.add(reply(2))
    await clock.wait_for_sleepers()
    await advance(clock, FIRST)
    assert writes.batches == [[0, 1]]  # a chatty run's later replies are batched over the long window
    await advance(clock, FLUSH - FIRST)
    assert writes.batches == [[0, 1], [2]]
    assert await recorder.close() == []


async def test_a_run_that_ends_within_its_first_window_stores_its_reply_with_its_outcome() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH, first_flush_after=FIRST)
    await recorder.add(reply(0))
    await clock.wait_for_sleepers()
    await advance(clock, FIRST / 2)
    assert [pending.output_index for pending in await recorder.close()] == [0]
    await advance(clock, FLUSH)
    assert writes.batches == []  # one transaction for the reply and the outcome, as before


async def test_a_first_window_closed_by_max_pending_leaves_the_long_window_for_the_rest() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH, first_flush_after=FIRST, max_pending=2)
    await recorder.add(reply(0))
    await recorder.add(reply(1))
    assert writes.batches == [[0, 1]]
    await recorder.add(reply(2))
    await clock.wait_for_sleepers()
    await advance(clock, FIRST)
    assert writes.batches == [[0, 1]]
    await advance(clock, FLUSH - FIRST)
    assert writes.batches == [[0, 1], [2]]
