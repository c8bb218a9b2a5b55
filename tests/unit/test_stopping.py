"""``unless_stopped``: the daemon's start-up and the adapters' long calls give way to a stop (kanmon/stopping.py)."""

from __future__ import annotations

import asyncio

import pytest

from kanmon.stopping import unless_stopped


async def test_work_that_finishes_first_gives_its_result() -> None:
    async def work() -> int:
        return 7

    done = await unless_stopped(work(), asyncio.Event())
    assert done is not None and done.result() == 7


async def test_a_stop_first_cancels_the_work_and_waits_for_it_to_unwind() -> None:
    unwound = asyncio.Event()
    stopping = asyncio.Event()

    async def work() -> None:
        try:
            stopping.set()
            await asyncio.sleep(3600)
        finally:
            unwound.set()

    assert await unless_stopped(work(), stopping) is None
    assert unwound.is_set()


async def test_what_the_work_raised_is_raised_to_the_caller() -> None:
    async def work() -> None:
        raise LookupError("no such thing")

    with pytest.raises(LookupError, match="no such thing"):
        await unless_stopped(work(), asyncio.Event())
