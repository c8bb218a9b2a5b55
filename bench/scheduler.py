"""The task scheduler at scale (issue 15): 10,000 active tasks across 1,000 groups, a minute of simulated time.

    .venv/bin/python bench/scheduler.py [--url URL] [--tasks 10000] [--groups 1000] [--seconds 60]

A share of the tasks (``--burst``, half) are ``* * * * *``, all due at the same minute boundary (many users' "at
9:00" at once), the rest ``every 1m`` with their anchors spread over the minute. The scheduler runs on an injected
clock that moves by each tick's real duration and by the waits the scheduler asks for, so simulated time never runs
ahead of the work: an occurrence's lateness is the time from its instant to the commit of the tick that stored it,
in real seconds of work. Prints CPU per tick (process time, all threads), fire lateness p50/p99/max, and the
occurrences stored (each once: checked). Target (issue 15): lateness p99 ≤ 1 s. It asserts nothing but exactly-once
(these machines are shared and noisy).

``--cpu-clock`` moves the clock by each tick's CPU time instead (what the lateness would be on a machine nobody
else uses: these are shared, and real time there is mostly other processes' time).

On the shared 2-CPU machine, ``--burst 0.5`` (5,000 due at one instant, fired 1,000 per tick): before issue 15's
burst work (load 5) p50 0.7 s, p99 3 s, about 0.35 ms of work per occurrence; SQLite answered the insert's
``chat_jid IN (…) AND id IN (…)`` check with one index probe per chat × id pair, and every task parsed its cron
expression anew. Now (load 15–21, the same runs interleaved with the old code): CPU per busy tick p99 140–160 ms
(was 810–960 ms), fire lateness p99 0.65 s in CPU time; in real time 3.0 s at load 15 (the old code: 20–37 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from benchkit import add_url_option, describe, fresh_store
from sqlalchemy import insert

from kanmon.clock import FakeClock
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.gateway.scheduler import SchedulerConfig, TaskScheduler
from kanmon.store import Store
from kanmon.store.aio import AsyncStore
from kanmon.store.tables import registered_groups, tasks

START = dt.datetime(2026, 11, 30, 8, 59, 30, tzinfo=dt.UTC)


def fill(store: Store, total: int, groups: int, burst: float = 0.5) -> None:
    """``groups`` groups and ``total`` tasks, inserted in bulk (the store's own add_task is one transaction each)."""
    with store.engine.begin() as conn:
        conn.execute(
            insert(registered_groups), [{"folder": f"g{n:04d}", "name": "", "added_at": START} for n in range(groups)]
        )
        rows = []
        for n in range(total):
            folder = f"g{n % groups:04d}"
            cron = n < total * burst
            due = START + dt.timedelta(seconds=n % 60)
            anchor = due - dt.timedelta(minutes=1)
            first = START + dt.timedelta(seconds=30) if cron else due
            rows.append(
                {
                    "group_folder": folder, "chat_jid": f"web:{folder}", "topic": "", "prompt": f"task {n}",
                    "kind": "cron" if cron else "every", "expression": "* * * * *" if cron else "60",
                    "timezone": "UTC", "missed": "latest", "status": "active", "next_fire_at": first,
                    "fire_count": 0, "created_by": "operator", "created_at": anchor,
                }
            )  # fmt: skip
        conn.execute(insert(tasks), rows)


async def simulate(store: Store, seconds: float, *, cpu_clock: bool = False) -> tuple[list[float], list[float], int]:
    """Run the scheduler for ``seconds`` of simulated time; returns CPU seconds per tick, lateness, ticks. With
    ``cpu_clock`` the clock moves by each tick's CPU time instead of its real duration (a machine nobody else uses)."""
    clock = FakeClock(wall_start=START)
    db = AsyncStore(store, clock=clock)
    scheduler = TaskScheduler(db, Registry(store), SchedulerConfig(interval=1.0), clock=clock, metrics=GatewayMetrics())
    cpu: list[float] = []
    lateness: list[float] = []
    try:
        while (clock.now() - START).total_seconds() < seconds:
            began_cpu, began = time.process_time(), time.perf_counter()
            wait = await scheduler.tick()
            took = time.perf_counter() - began
            cpu.append(time.process_time() - began_cpu)
            if cpu_clock:
                took = cpu[-1]
            if scheduler.last is not None:
                lateness.extend(late + took for late in scheduler.last.lateness)
            clock.advance(took + wait)
    finally:
        db.close()
    return cpu, lateness, scheduler.ticks


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_url_option(parser)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burst", type=float, default=0.5, help="share of the tasks due at one instant (cron)")
    parser.add_argument("--cpu-clock", action="store_true", help="time is the ticks' CPU time, not their real time")
    args = parser.parse_args()
    print(describe(args.url))
    with tempfile.TemporaryDirectory() as tmp, fresh_store(args.url, Path(tmp)) as store:
        began = time.perf_counter()
        fill(store, args.tasks, args.groups, args.burst)
        print(f"{args.tasks} tasks in {args.groups} groups stored in {time.perf_counter() - began:.1f}s")
        cpu, lateness, ticks = asyncio.run(simulate(store, args.seconds, cpu_clock=args.cpu_clock))
        ids = [row.id for row in store.new_messages(0, 10 * args.tasks) if row.id.startswith("task:")]
        fired = sum(task.fire_count for task in store.list_tasks())
        assert len(ids) == len(set(ids)) == fired, (len(ids), len(set(ids)), fired)
        busy = [value for value in cpu if value > 0.005]
        print(
            f"{args.seconds:g}s simulated: {ticks} ticks, {fired} occurrences stored (each once)\n"
            f"CPU per tick: median {statistics.median(cpu) * 1000:.1f} ms, p99 {pct(cpu, 0.99) * 1000:.0f} ms,"
            f" max {max(cpu) * 1000:.0f} ms; ticks busier than 5 ms: {len(busy)}\n"
            f"fire lateness: p50 {pct(lateness, 0.5) * 1000:.0f} ms, p99 {pct(lateness, 0.99) * 1000:.0f} ms,"
            f" max {max(lateness, default=0) * 1000:.0f} ms (target p99 ≤ 1000 ms)"
            + (" in CPU time" if args.cpu_clock else "")
        )


if __name__ == "__main__":
    main()
