"""Two processes appending at once lose nothing, raise nothing, and never let a cursor reader skip a row.

A reader that follows ``seq > cursor`` is only safe if rows become visible in seq order. On PostgreSQL a sequence
hands out numbers before commit, so without the store's append lock seq 11 can commit before seq 10 and the reader,
having moved its cursor to 11, never sees 10. The reader below runs while the writers write, exactly like the poll loop.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

from kanmon.store import NewMessage, Store

# Without the append lock, 500 a writer made the PostgreSQL reader skip rows in each of 4 runs (2026-12-01); 1,500
# keeps a margin at a tenth of the time 5,000 took (75 s of a loaded suite).
PER_WRITER = 1_500


def write_messages(url: str, writer: str, count: int, start: multiprocessing.synchronize.Event) -> None:
    """Child process: append ``count`` messages one transaction each; fail loudly on any error or reordering."""
    store = Store.open(url)
    start.wait()
    previous = 0
    for i in range(count):
        seq = store.put_message(NewMessage(chat_jid=f"test:{writer}", id=str(i), content=f"{writer}-{i}")).message.seq
        if seq <= previous:
            raise AssertionError(f"{writer}: seq went from {previous} to {seq}")
        previous = seq
    store.close()


@pytest.mark.slow
def test_two_processes_appending_at_once_lose_nothing_and_a_following_reader_skips_nothing(
    store: Store, store_url: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    writers = [ctx.Process(target=write_messages, args=(store_url, name, PER_WRITER, start)) for name in ("a", "b")]
    for process in writers:
        process.start()
    start.set()

    # follow the log the way the poll loop does, concurrently with the writers
    seen: list[int] = []
    cursor = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        writing = any(p.is_alive() for p in writers)
        batch = store.new_messages(after_seq=cursor, limit=200)
        seen.extend(m.seq for m in batch)
        if batch:
            cursor = batch[-1].seq
        elif not writing:
            break

    for process in writers:
        process.join(timeout=30)
        assert process.exitcode == 0, "a writer failed (see its traceback above)"

    stored = [m.seq for m in store.new_messages(0, limit=3 * PER_WRITER)]
    assert len(stored) == 2 * PER_WRITER
    assert seen == stored, f"the reader skipped {len(set(stored) - set(seen))} rows"
    for writer in ("a", "b"):
        contents = [m.content for m in store.new_messages(0, limit=3 * PER_WRITER) if m.chat_jid == f"test:{writer}"]
        assert contents == [f"{writer}-{i}" for i in range(PER_WRITER)]
