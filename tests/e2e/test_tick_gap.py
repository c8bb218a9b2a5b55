"""The loop's tick gap (``LoopConfig.tick_gap``): after a tick that read rows, the next one waits a few
milliseconds, so messages arriving back to back share a tick instead of paying one each; the first message after a
quiet spell waits for nothing, and stopping does not wait for the gap.

bench/throughput.py, one awaited put per message (4,000 messages, 1,000 groups): 195 and 156 messages/s with no gap,
254 and 239 with 5 ms (2.8 → 1.9 transactions per run); bench/latency.py's single messages unchanged (p50 3.6 vs
3.7 ms). Time here is a FakeClock: the gap passes only when the test says so.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kanmon.clock import FakeClock
from kanmon.store import NewMessage
from tests.gateway_harness import Harness, running_gateway

GAP = 0.005
CHAT = "web:nobody"  # no group owns it: the loop reads its rows and skips them, and no run starts


def _message(text: str) -> NewMessage:
    return NewMessage(chat_jid=CHAT, content=text, sender="web:someone")


async def _read(h: Harness, count: int) -> None:
    """Until the loop has read ``count`` inbound rows (none is new any more), on real time: the clock stands still."""
    await h.wait_for(lambda: h.store.counts()["inbound_new"] == 0 and len(h.inbound(CHAT)) == count, "rows read")


async def _in_the_gap(clock: FakeClock, gap: float = GAP) -> None:
    """Until the loop sleeps its gap: the delivery worker and the scheduler sleep on the clock too, so any sleeper
    will not do (advancing before the loop's sleep began would leave it asleep for good)."""
    for _ in range(6000):  # 60 s of real time at most; read on the loop's thread, where the sleepers change
        if any(abs(deadline - clock.monotonic() - gap) < 1e-9 for deadline in clock.sleeping):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the loop never slept its tick gap")


async def test_messages_within_the_gap_wait_for_it_and_then_share_one_tick(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_gateway(tmp_path / "data", [], clock=clock, tick_gap=GAP) as h:
        await h.gateway.put_message(_message("first"))
        await _read(h, 1)  # read at once: the chat was quiet
        await _in_the_gap(clock)
        ticks = h.gateway.loop.ticks  # counted once the tick is over, which the gap's sleep follows
        await h.gateway.put_message(_message("second"))
        await h.gateway.put_message(_message("third"))
        await asyncio.sleep(0.2)  # real time: a loop that ignored the gap would have read them by now
        assert h.store.counts()["inbound_new"] == 2
        assert h.gateway.loop.ticks == ticks
        clock.advance(GAP)
        await _read(h, 3)
        assert h.gateway.loop.ticks == ticks + 1  # both in one tick


async def test_the_first_message_after_the_gap_is_read_without_waiting(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_gateway(tmp_path / "data", [], clock=clock, tick_gap=GAP) as h:
        await h.gateway.put_message(_message("first"))
        await _read(h, 1)
        await _in_the_gap(clock)
        clock.advance(GAP)  # the gap passes; the loop waits for its next poll or a wake-up
        await asyncio.sleep(0.05)
        await h.gateway.put_message(_message("later"))
        await _read(h, 2)  # the clock did not move: the wake-up alone ticked


async def test_stopping_does_not_wait_for_the_gap(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_gateway(tmp_path / "data", [], clock=clock, tick_gap=3600.0) as h:
        await h.gateway.put_message(_message("first"))
        await _read(h, 1)
        await _in_the_gap(clock, 3600.0)
    # leaving the block stopped the gateway (drain included) without the clock moving an hour


async def test_with_no_gap_each_message_is_read_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_gateway(tmp_path / "data", [], clock=clock, tick_gap=0.0) as h:
        for count in (1, 2, 3):
            await h.gateway.put_message(_message(f"message {count}"))
            await _read(h, count)
