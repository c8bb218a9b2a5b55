"""The Telegram adapter's state is written to disk off its event loop (an outside review).

Each update's offset and each posted part's journal line is fsynced before the adapter goes on; on the event loop,
every fsync (milliseconds, seconds on a busy disk) stalled every other send and the polling with it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kanmon.adapters.state import AdapterState, SentPart


@pytest.fixture
def fsync_threads(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The threads every ``os.fsync`` ran on."""
    threads: list[threading.Thread] = []
    real = os.fsync

    def recording(fd: int) -> None:
        threads.append(threading.current_thread())
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return threads


@contextmanager
def opened(directory: Path) -> Iterator[AdapterState]:
    """The adapter's state directory, locked while the block runs (as one adapter process holds it)."""
    state = AdapterState(directory).open()
    try:
        yield state
    finally:
        state.close()


async def test_a_journal_line_is_fsynced_on_a_worker_thread_and_counts_once_on_disk(
    tmp_path: Path, fsync_threads: list[threading.Thread]
) -> None:
    with opened(tmp_path / "state") as state:
        await state.remember_sent("kanmon-1", SentPart(0, "77"))
        assert fsync_threads and threading.main_thread() not in fsync_threads
        assert state.sent("kanmon-1") == [SentPart(0, "77")]
    with opened(tmp_path / "state") as again:  # read back by the next adapter process
        assert again.sent("kanmon-1") == [SentPart(0, "77")]


async def test_an_offset_is_fsynced_on_a_worker_thread_and_counts_once_on_disk(
    tmp_path: Path, fsync_threads: list[threading.Thread]
) -> None:
    with opened(tmp_path / "state") as state:
        await state.keep_offset(1234, 7)
        assert fsync_threads and threading.main_thread() not in fsync_threads
        assert (state.offset, state.offset_bot) == (1234, 7)
    with opened(tmp_path / "state") as again:
        assert (again.offset, again.offset_bot) == (1234, 7)


async def test_a_journal_line_that_cannot_be_written_raises_and_is_remembered_until_the_process_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(tmp_path / "state") as state:
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        with pytest.raises(OSError):
            await state.remember_sent("kanmon-1", SentPart(0, "77"))
        assert state.sent("kanmon-1") == [SentPart(0, "77")]  # a retry of this process posts it no more


async def test_a_send_cancelled_while_its_line_is_written_has_its_part_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Telegram took the part; the send was cancelled (a shutdown) while the journal line went to disk: a retry in this
    # process must find the part, or it posts it again
    state = AdapterState(tmp_path / "state").open()
    writing, release = threading.Event(), threading.Event()
    real = state._append

    def slow(key: str, part: SentPart, at: float) -> None:
        writing.set()
        release.wait(10)
        real(key, part, at)

    monkeypatch.setattr(state, "_append", slow)
    try:
        task = asyncio.create_task(state.remember_sent("kanmon-1", SentPart(0, "77")))
        assert await asyncio.to_thread(writing.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert state.sent("kanmon-1") == [SentPart(0, "77")]
    finally:
        release.set()
        state.close()
