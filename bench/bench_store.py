"""Store benchmarks: append throughput, and poll cost as history grows (SPEC §15: 1,000,000 vs 10,000 rows ≤ 1.5).

    .venv/bin/python bench/bench_store.py [--url URL] [--small 10000] [--large 1000000]

Prints figures and the ratio; it asserts nothing (these machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from benchkit import add_url_option, describe, fresh_store
from sqlalchemy import insert

from kanmon.store import NewMessage, Store
from kanmon.store.tables import messages

ROWS_PER_CHUNK = 20_000


def fill(store: Store, total: int) -> None:
    """Bulk-insert ``total`` history rows (already consumed: status done), bypassing put_message for speed."""
    stamp = dt.datetime.now(dt.UTC)
    done = 0
    with store.engine.begin() as conn:
        while done < total:
            n = min(ROWS_PER_CHUNK, total - done)
            rows = [
                {
                    "id": f"h{done + i}",
                    "chat_jid": f"bench:{(done + i) % 1000}",
                    "direction": "in",
                    "content": "history",
                    "timestamp": stamp,
                    "received_at": stamp,
                    "status": "done",
                }
                for i in range(n)
            ]
            conn.execute(insert(messages), rows)
            done += n


def poll_cost(store: Store, rounds: int = 200) -> float:
    """Median seconds of one poll (``new_messages`` past the newest row, then one new row) at the current size."""
    samples = []
    for i in range(rounds):
        cursor = store.max_seq()
        store.put_message(NewMessage(chat_jid="bench:poll", content=str(i)))
        start = time.perf_counter()
        batch = store.new_messages(after_seq=cursor, limit=200)
        samples.append(time.perf_counter() - start)
        assert len(batch) == 1
    return statistics.median(samples)


def append_rate(store: Store, count: int = 2_000) -> float:
    """put_message calls per second, one transaction each."""
    start = time.perf_counter()
    for i in range(count):
        store.put_message(NewMessage(chat_jid=f"bench:{i % 100}", content="x"))
    return count / (time.perf_counter() - start)


def measure(url: str, directory: Path, history: int) -> tuple[float, float]:
    """Poll cost and append rate on a fresh store with ``history`` rows."""
    with fresh_store(url, directory) as store:
        fill(store, history)
        return poll_cost(store), append_rate(store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    add_url_option(parser)
    args = parser.parse_args()
    print(f"on {describe(args.url)}")
    with tempfile.TemporaryDirectory() as tmp:
        small_cost, small_rate = measure(args.url, Path(tmp), args.small)
        large_cost, large_rate = measure(args.url, Path(tmp), args.large)
    print(f"poll with {args.small:>9,} rows: {small_cost * 1e6:8.1f} µs   appends: {small_rate:8.0f}/s")
    print(f"poll with {args.large:>9,} rows: {large_cost * 1e6:8.1f} µs   appends: {large_rate:8.0f}/s")
    print(f"poll cost ratio large/small: {large_cost / small_cost:.2f}  (target ≤ 1.5)")


if __name__ == "__main__":
    main()
