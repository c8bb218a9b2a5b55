"""Ingest → run start latency, gateway overhead only (SPEC §15: p50 ≤ 20 ms, p99 ≤ 100 ms with the wake-up).

    .venv/bin/python bench/latency.py [--messages 200] [--http-messages 200] [--poll-messages 30] [--groups 4]

A real :class:`kanmon.gateway.Gateway` serves a fresh SQLite store in a temp dir; its groups run on the process
runtime with an agent that exits at once (``/bin/true``). The process runtime is wrapped: its ``start`` notes
``time.perf_counter()`` and only then delegates, so the runtime's own cost (spawning the process) is excluded.
For each message, sent one at a time after the previous run has finished (groups taken in turn):

* t0 = just before the message is stored;
* t1 = the moment the gateway calls the runtime's ``start``;

and the latency is t1 − t0 (store, poll/wake, layers, dispatch, queue, batch, session, ``begin_run``, spec).

Four modes, all with the production poll interval (2 s):

(a) wake-up: the message is stored with ``await gateway.put_message(...)``, which wakes the loop in-process;
(c) an adapter over HTTP: gated's own app (:func:`kanmon.web.create_app`) served by uvicorn on a
    :func:`kanmon.serving.tcp_listener` socket, a registered adapter POSTing ``/v1/messages`` on one kept-alive
    connection (httpx), as the shipped adapters do: (a) plus the request's way in, auth and validation. The run
    may start before the adapter has its answer, so the POST's round trip (what an adapter waits for each message,
    e.g. before it confirms the update to Telegram) is printed as well;
(b) polling only: the message is stored with ``gateway.store.put_message`` from a thread, so nothing wakes the
    loop, and the loop's watch for other processes' rows is off (``watch_interval`` 0): the row waits for the next
    2 s poll. Each message is sent after a random pause of 0–2 s, so that it lands at a random point of the poll
    cycle (otherwise it would always arrive just after the tick that the previous run's end triggers, and always
    wait the full 2 s). Fewer messages here (default 30: ~1 min);
(d) another process: as (b), with the watch on (``watch_interval``, 0.25 s by default), as ``gated send`` and
    ``gated chat`` against a running gated are answered; a random pause of 0–0.25 s before each.

The first ``--warmup`` messages of each mode are not counted. ``--gap`` adds a pause before each mode (a, c) message
(default 0: sent as soon as the previous run is recorded; 0.05 s gave the same figures). Prints figures and the
ratio; asserts nothing (these machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kanmon.container import ProcessRuntime, RunSpec
from kanmon.container.handle import RunHandle
from kanmon.gateway import Gateway, GatewayConfig, LoopConfig, RunDefaults
from kanmon.serving import EmbeddedServer, tcp_listener
from kanmon.store import Group, NewMessage, Store, upgrade
from kanmon.web import WebConfig, create_app

POLL_INTERVAL = 2.0  # production's default (LoopConfig)
WATCH_INTERVAL = LoopConfig.watch_interval
TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0
CHANNEL_SECRET = "bench-channel-secret"


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


@contextlib.asynccontextmanager
async def adapter_posts(
    gateway: Gateway, round_trips: list[float]
) -> AsyncIterator[Callable[[NewMessage], Awaitable[Any]]]:
    """Serve ``gateway``'s app on 127.0.0.1 and register an adapter owning ``bench:``; yield its ``POST
    /v1/messages`` of a message (returning once gated answered, i.e. stored it), which appends its round trip in
    seconds to ``round_trips``."""
    app = create_app(gateway, WebConfig(channel_secret=CHANNEL_SECRET))
    listener = tcp_listener("127.0.0.1", 0, backlog=64)
    server = EmbeddedServer(uvicorn.Config(app, log_config=None, lifespan="off", ws="none", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(1000):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            await gateway.started.wait()  # writes are refused (503) until the gateway serves
            body = {"name": "bench", "url": "http://127.0.0.1:9", "jid_prefixes": ["bench:"]}
            answer = await http.post(
                "/channels/register", json=body, headers={"Authorization": f"Bearer {CHANNEL_SECRET}"}
            )
            answer.raise_for_status()
            headers = {"Authorization": f"Bearer {answer.json()['token']}"}

            async def post(new: NewMessage) -> None:
                message = {"chat_jid": new.chat_jid, "id": new.id, "content": new.content, "sender": new.sender}
                started = time.perf_counter()
                (await http.post("/messages", json=message, headers=headers)).raise_for_status()
                round_trips.append(time.perf_counter() - started)

            yield post
    finally:
        server.should_exit = True
        await serving
        listener.close()


async def in_thread(store: Store, new: NewMessage) -> None:
    """Store ``new`` from a thread, the way another process would: nothing wakes the loop."""
    await asyncio.to_thread(store.put_message, new)


async def measure(
    data_dir: Path,
    *,
    groups: int,
    messages: int,
    warmup: int,
    mode: str,
    pause: Callable[[], float],
    round_trips: list[float] | None = None,
) -> list[float]:
    """Serve a gateway on a fresh store in ``data_dir`` and return the ingest → start latencies in seconds;
    ``mode`` is ``wake``, ``poll``, ``http`` or ``watch`` (the docstring's a, b, c, d); ``http`` appends each POST's
    round trip after the warm-up to ``round_trips``."""
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    upgrade(store.engine)
    command = exit_at_once_command()
    folders = [f"g{i:02d}" for i in range(groups)]
    prefix = "bench" if mode == "http" else "web"
    for seq, folder in enumerate(folders):
        store.add_group(Group(folder=folder, container_config={"runtime": "process", "command": command}))
        if mode == "http":
            store.add_route(seq=seq, match=f"chat_jid=bench:{folder}", target=folder)
    runtime = StampedRuntime(ProcessRuntime(data_dir / "runs", data_dir=data_dir))
    config = GatewayConfig(
        run=RunDefaults(instance="bench", data_dir=data_dir, runtime="process", stop_grace=2.0),
        loop=LoopConfig(poll_interval=POLL_INTERVAL, watch_interval=0.0 if mode == "poll" else WATCH_INTERVAL),
    )
    gateway = Gateway(store, {"process": runtime}, config)
    stopping = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stopping))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            store_it: Callable[[NewMessage], Awaitable[Any]]
            if mode == "http":
                trips: list[float] = []
                store_it = await stack.enter_async_context(adapter_posts(gateway, trips))
            elif mode == "wake":
                store_it = gateway.put_message
            else:
                store_it = partial(in_thread, store)
            await asyncio.sleep(0.1)  # the first tick (start-up recovery) is not what is measured
            for i in range(warmup + messages):
                await asyncio.sleep(pause())
                runtime.waiter = loop.create_future()
                new = NewMessage(chat_jid=f"{prefix}:{folders[i % groups]}", content=f"ping {i}", sender="user:1",
                                 id=f"m{i}")  # fmt: skip
                t0 = time.perf_counter()
                await store_it(new)
                t1 = await asyncio.wait_for(runtime.waiter, timeout=POLL_INTERVAL * 5)
                if i >= warmup:
                    latencies.append(t1 - t0)
                    if mode == "http" and round_trips is not None:
                        round_trips.append(trips[-1])
                await run_idle(gateway)
    finally:
        stopping.set()
        await serving
        store.close()
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="messages measured with the wake-up (mode a)")
    parser.add_argument("--http-messages", type=int, default=200, help="messages an adapter POSTs (mode c)")
    parser.add_argument("--poll-messages", type=int, default=30, help="messages measured polling only (mode b)")
    parser.add_argument("--watch-messages", type=int, default=60, help="messages another process stores (mode d)")
    parser.add_argument("--groups", type=int, default=4, help="groups the messages go to in turn")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted messages at the start of each mode")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of quiet before each mode (a, c) message")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random pauses of mode b")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    round_trips: list[float] = []
    gap = lambda: args.gap  # noqa: E731
    modes: dict[str, tuple[int, int, Callable[[], float]]] = {  # mode: (messages, warm-up, pause before each)
        "wake": (args.messages, args.warmup, gap),
        "http": (args.http_messages, args.warmup, gap),
        "poll": (args.poll_messages, min(args.warmup, 1), lambda: rng.uniform(0.0, POLL_INTERVAL)),
        "watch": (args.watch_messages, min(args.warmup, 1), lambda: rng.uniform(0.0, WATCH_INTERVAL)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        found = {
            mode: await measure(
                Path(tmp) / mode, groups=args.groups, messages=messages, warmup=warmup, mode=mode, pause=pause,
                round_trips=round_trips,
            )
            for mode, (messages, warmup, pause) in modes.items()
        }  # fmt: skip
    a, b, c, d = (Figures.of(found[mode]) for mode in ("wake", "poll", "http", "watch"))
    print(f"ingest → run start, gateway overhead only (process runtime excluded), poll interval {POLL_INTERVAL:.0f} s")
    print(a.line("(a) wake-up"))
    print(c.line("(c) adapter over HTTP"))
    print(Figures.of(round_trips).line("(c) its POST round trip"))
    print(b.line("(b) polling only"))
    print(d.line("(d) another process"))
    print(f"target with wake-up: p50 ≤ {TARGET_P50_MS:.0f} ms, p99 ≤ {TARGET_P99_MS:.0f} ms")
    for label, figures in (("(a)", a), ("(c)", c)):
        print(f"  {label} p50 {figures.p50:.1f} ms: {'met' if figures.p50 <= TARGET_P50_MS else 'MISSED'}")
        print(f"  {label} p99 {figures.p99:.1f} ms: {'met' if figures.p99 <= TARGET_P99_MS else 'MISSED'}")
    print(f"ratio p50(polling)/p50(wake-up): {b.p50 / a.p50:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
