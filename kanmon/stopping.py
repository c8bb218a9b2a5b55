"""Waiting for work that a stop request may overtake: the daemon's start-up and the adapters' long calls.

One shape, in one place: await ``work`` unless ``stopping`` is set first, and then cancel ``work`` and wait for
it to unwind, so nothing is left running behind the caller's back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from kanmon.clock import Clock

__all__ = ["nap", "unless_stopped"]

T = TypeVar("T")


async def unless_stopped(work: Awaitable[T], stopping: asyncio.Event) -> asyncio.Future[T] | None:
    """Await ``work`` unless ``stopping`` is set first.

    Returns the finished future (its result already read: an exception ``work`` raised is raised here), or None when
    ``stopping`` came first; ``work`` has then been cancelled and has unwound.
    """
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    task.result()
    return task


async def nap(wake: asyncio.Event, stopping: asyncio.Event, clock: Clock, seconds: float) -> None:
    """Sleep ``seconds`` on ``clock``, or less: until ``wake`` or ``stopping`` is set (the loop's and the scheduler's
    wait between ticks). A ``wake`` already set, or no time to wait, only yields to the event loop once."""
    if wake.is_set() or seconds <= 0:
        await asyncio.sleep(0)
        return
    waits = [
        asyncio.create_task(wake.wait()),
        asyncio.create_task(stopping.wait()),
        asyncio.create_task(clock.sleep(seconds)),
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
