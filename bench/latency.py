"""Ingest → run start latency, gateway overhead only (SPEC §15: p50 ≤ 20 ms, p99 ≤ 100 ms with the wake-up).

    .venv/bin/python bench/latency.py [--messages 200] [--poll-messages 30] [--groups 4]

A real :class:`kanmon.gateway.Gateway` serves a fresh SQLite store in a temp dir; its groups run on the process
runtime with an agent that exits at once (``/bin/true``). The process runtime is wrapped: its ``start`` notes
``time.perf_counter()`` and only then delegates, so the runtime's own cost (spawning the process) is excluded.
For each message, sent one at a time after the previous run has finished (groups taken in turn):

* t0 = just before the message is stored;
* t1 = the moment the gateway calls the runtime's ``start``;

and the latency is t1 − t0 (store, poll/wake, layers, dispatch, queue, batch, session, ``begin_run``, spec).

Two modes, both with the production poll interval (2 s):

(a) wake-up: the message is stored with ``await gateway.put_message(...)``, which wakes the loop in-process;
(b) polling only: the message is stored with ``gateway.store.put_message`` from a thread, so nothing wakes the
    loop and the row waits for the next 2 s poll. Each message is sent after a random pause of 0–2 s, so that it
    lands at a random point of the poll cycle (otherwise it would always arrive just after the tick that the
    previous run's end triggers, and always wait the full 2 s). Fewer messages here (default 30: ~1 min).

The first ``--warmup`` messages of each mode are not counted. ``--gap`` adds a pause before each mode (a) message
(default 0: sent as soon as the previous run is recorded; 0.05 s gave the same figures). Prints figures and the
ratio; asserts nothing (these machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanmon.container import ProcessRuntime, RunSpec
from kanmon.container.handle import RunHandle
from kanmon.gateway import Gateway, GatewayConfig, LoopConfig, RunDefaults
from kanmon.store import Group, NewMessage, Store, upgrade

POLL_INTERVAL = 2.0  # production's default (LoopConfig)
TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0


def exit_at_once_command() -> list[str]:
    """An agent that exits 0 at once with nothing to say: ``/bin/true``, else a bare Python."""
    true = shutil.which("true")
    return [true] if true else [sys.executable, "-I", "-c", "pass"]


class StampedRuntime:
    """A runtime wrapper whose ``start`` resolves the current waiter with ``perf_counter()`` before delegating."""

    def __init__(self, inner: ProcessRuntime) -> None:
        self.inner = inner
        self.waiter: asyncio.Future[float] | None = None

    async def start(self, spec: RunSpec) -> RunHandle:
        stamp = time.perf_counter()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(stamp)
        return await self.inner.start(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(frozen=True)
class Figures:
    """Latency percentiles of one mode, in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Figures:
        ms = sorted(s * 1000 for s in seconds)
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        return cls(len(ms), cuts[49], cuts[89], cuts[98], ms[-1], statistics.fmean(ms))

    def line(self, label: str) -> str:
        return (
            f"{label:<24} n={self.count:<4} p50 {self.p50:8.1f}  p90 {self.p90:8.1f}  p99 {self.p99:8.1f}  "
            f"max {self.max:8.1f}  mean {self.mean:8.1f} ms"
        )


async def run_idle(gateway: Gateway) -> None:
    """Wait until the queue has nothing running, waiting or backing off (the last run has been recorded)."""
    while True:
        counts = gateway.queue.counts()
        if not (counts.running or counts.waiting or counts.backing_off):
            return
        await asyncio.sleep(0.001)


async def measure(
    data_dir: Path, *, groups: int, messages: int, warmup: int, wake: bool, pause: Callable[[], float]
) -> list[float]:
    """Serve a gateway on a fresh store in ``data_dir`` and return the ingest → start latencies in seconds."""
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    upgrade(store.engine)
    command = exit_at_once_command()
    folders = [f"g{i:02d}" for i in range(groups)]
    for folder in folders:
        store.add_group(Group(folder=folder, container_config={"runtime": "process", "command": command}))
    runtime = StampedRuntime(ProcessRuntime(data_dir / "runs", data_dir=data_dir))
    config = GatewayConfig(
        run=RunDefaults(instance="bench", data_dir=data_dir, runtime="process", stop_grace=2.0),
        loop=LoopConfig(poll_interval=POLL_INTERVAL),
    )
    gateway = Gateway(store, {"process": runtime}, config)
    stopping = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stopping))
    store_it: Callable[[NewMessage], Awaitable[Any]] = (
        gateway.put_message if wake else (lambda new: asyncio.to_thread(store.put_message, new))
    )
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    try:
        await asyncio.sleep(0.1)  # the first tick (start-up recovery) is not what is measured
        for i in range(warmup + messages):
            await asyncio.sleep(pause())
            runtime.waiter = loop.create_future()
            new = NewMessage(chat_jid=f"web:{folders[i % groups]}", content=f"ping {i}", sender="user:1")
            t0 = time.perf_counter()
            await store_it(new)
            t1 = await asyncio.wait_for(runtime.waiter, timeout=POLL_INTERVAL * 5)
            if i >= warmup:
                latencies.append(t1 - t0)
            await run_idle(gateway)
    finally:
        stopping.set()
        await serving
        store.close()
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="messages measured with the wake-up (mode a)")
    parser.add_argument("--poll-messages", type=int, default=30, help="messages measured polling only (mode b)")
    parser.add_argument("--groups", type=int, default=4, help="groups the messages go to in turn")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted messages at the start of each mode")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of quiet before each mode (a) message")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random pauses of mode b")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        woken = await measure(
            Path(tmp) / "wake",
            groups=args.groups,
            messages=args.messages,
            warmup=args.warmup,
            wake=True,
            pause=lambda: args.gap,
        )
        polled = await measure(
            Path(tmp) / "poll",
            groups=args.groups,
            messages=args.poll_messages,
            warmup=min(args.warmup, 1),
            wake=False,
            pause=lambda: rng.uniform(0.0, POLL_INTERVAL),
        )
    a, b = Figures.of(woken), Figures.of(polled)
    print(f"ingest → run start, gateway overhead only (process runtime excluded), poll interval {POLL_INTERVAL:.0f} s")
    print(a.line("(a) wake-up"))
    print(b.line("(b) polling only"))
    print(f"target with wake-up: p50 ≤ {TARGET_P50_MS:.0f} ms, p99 ≤ {TARGET_P99_MS:.0f} ms")
    print(f"  p50 {a.p50:.1f} ms: {'met' if a.p50 <= TARGET_P50_MS else 'MISSED'}")
    print(f"  p99 {a.p99:.1f} ms: {'met' if a.p99 <= TARGET_P99_MS else 'MISSED'}")
    print(f"ratio p50(polling)/p50(wake-up): {b.p50 / a.p50:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
