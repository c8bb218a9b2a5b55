"""FakeClock: virtual time that moves only when a test advances it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from kanmon.clock import Clock, FakeClock, SystemClock


async def test_a_sleep_ends_only_when_the_clock_reaches_its_deadline() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep(10.0))
    await clock.wait_for_sleepers(1)

    clock.advance(9.5)
    await asyncio.sleep(0)
    assert not sleeper.done()

    clock.advance(0.5)
    await asyncio.wait_for(sleeper, 1.0)
    assert clock.monotonic() == 10.0


async def test_advance_wakes_sleepers_in_deadline_order_and_keeps_later_ones() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def nap(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    naps = [asyncio.create_task(nap(s)) for s in (3.0, 1.0, 7.0)]
    await clock.wait_for_sleepers(3)
    clock.advance(5.0)
    await asyncio.gather(*naps[:2])

    assert woke == [1.0, 3.0]
    assert clock.sleeping == [7.0]
    naps[2].cancel()


async def test_a_cancelled_sleep_is_forgotten() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep(5.0))
    await clock.wait_for_sleepers(1)

    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper

    assert clock.sleeping == []


async def test_a_zero_sleep_returns_without_advancing() -> None:
    clock = FakeClock(100.0)

    await asyncio.wait_for(clock.sleep(0), 1.0)

    assert clock.monotonic() == 100.0


def test_wall_time_moves_with_the_virtual_time() -> None:
    start = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    clock = FakeClock(wall_start=start)

    clock.advance(90.0)

    assert clock.now() == start + timedelta(seconds=90)


def test_the_clock_never_goes_backwards() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1.0)


async def test_the_system_clock_is_a_clock() -> None:
    clock: Clock = SystemClock()
    before = clock.monotonic()

    await clock.sleep(0)

    assert clock.monotonic() >= before
    assert clock.now().tzinfo is UTC
