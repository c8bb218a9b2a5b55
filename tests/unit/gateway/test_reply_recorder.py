"""A run's replies are stored as they stream, a few transactions a second, the first at once (gateway/recorder.py).

The store is a list of the batches written; time is the fake clock's, so "held for 50 ms" is asserted, not slept.
"""

from __future__ import annotations

import asyncio

from kanmon.clock import FakeClock
from kanmon.gateway.recorder import ReplyRecorder
from kanmon.store import Message, NewMessage

FLUSH, FIRST = 0.05, 0.005


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


async def test_the_first_reply_is_stored_at_once_and_the_next_ones_together() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH, first_flush_after=FIRST)
    await recorder.add(reply(0))
    await clock.wait_for_sleepers()
    await advance(clock, FIRST)
    assert writes.batches == [[0]]  # what the chat waits for: not held for the batching window

    for index in (1, 2, 3):
        await recorder.add(reply(index))
    await clock.wait_for_sleepers()
    await advance(clock, FIRST)
    assert writes.batches == [[0]]  # the rest wait for the window, to go in one transaction
    await advance(clock, FLUSH - FIRST)
    assert writes.batches == [[0], [1, 2, 3]]
    assert await recorder.close() == []


async def test_a_run_that_ends_within_the_first_window_stores_its_reply_with_its_outcome() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=500, flush_after=FLUSH, first_flush_after=FIRST)
    await recorder.add(reply(0))
    assert [pending.output_index for pending in await recorder.close()] == [0]  # the run's last transaction takes it
    await advance(clock, FLUSH)
    assert writes.batches == []  # no transaction of its own


async def test_max_pending_replies_are_stored_without_waiting_and_a_full_run_drops_the_rest() -> None:
    clock, writes = FakeClock(), Writes()
    recorder = ReplyRecorder(writes, clock=clock, cap=5, flush_after=FLUSH, first_flush_after=FIRST, max_pending=2)
    for index in range(7):
        await recorder.add(reply(index))
    assert writes.batches == [[0, 1], [2, 3]]
    assert recorder.full and recorder.produced == 5
    assert [pending.output_index for pending in await recorder.close()] == [4]
