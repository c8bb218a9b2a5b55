"""Pipeline throughput with an in-process runtime (SPEC §15: ≥ 2,000 messages/s, 1,000 groups, SQLite, 2 cores).

    .venv/bin/python bench/throughput.py [--messages 10000] [--groups 1000] [--concurrency 5 [1 20 …]]
                                         [--ingest batch put insert] [--producers 1]
                                         [--url postgresql+psycopg://…/postgres]

A real :class:`kanmon.gateway.Gateway` serves a fresh store (SQLite in a temp dir, or a fresh database on the
PostgreSQL server ``--url`` names) with ``--groups`` groups
(``g0000`` …) on :class:`kanmon.container.InProcessRuntime`. Its agent costs nothing but emits one short result
per run (``{"status": "ok", "result": "ok"}``), so each run also stores a reply: the messages go through the
loop's layers and dispatch, the queue, the lane runner (batch, ``begin_run``, output parsing, reply row,
``end_batch``) and the delivery worker. The messages go round-robin to ``web:<folder>`` chats.

Ingest, with the gateway already serving (its start-up tick is not counted); by default both, one pass each:

* ``batch``: every row in one INSERT transaction, then one ``gateway.wake()``: the pipeline on its own, which is
  what the SPEC target is about;
* ``put``: ``--producers`` tasks (default 1), each making one ``await gateway.put_message(...)`` after another, as
  adapters would, each put waking the loop; the gateway works while they arrive (ingest competes with the runs).
  Puts made at the same time share a transaction (the gateway's group commit); one producer's never do.

* ``insert``: another process stores the messages, one ``Store.put_message`` (one INSERT transaction) after
  another, as fast as it can, the way a channel that writes into the store rather than calling gated's API would
  (SPEC §5: gated polls the store); gated finds them by its watch for rows other processes stored
  (``LoopConfig.watch_interval``, 0.25 s) and its poll. Not in the default set.

With ``put``, a first pass stores the same messages the same way into a gateway that is not serving (nothing is
routed, no run starts): the most those producers' puts can reach in this process, whatever the pipeline behind
them costs.

The clock runs from the first insert until no inbound row is ``new`` any more (every row consumed, every reply
recorded) and the queue is idle; messages/s = messages / that time. One pass per ingest mode and per
``--concurrency`` value (the queue's max_concurrent, default 5), each on a fresh store. Prints figures; asserts
nothing (these machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchkit import add_url_option, describe, fresh_store, read_row, run_replies
from sqlalchemy import Connection, event, exists, insert, select

from kanmon.container import AgentCall, InProcessRuntime
from kanmon.gateway import Gateway, GatewayConfig, LoopConfig, RunDefaults
from kanmon.store import Group, NewMessage, Store
from kanmon.store.engine import WRITE
from kanmon.store.tables import messages

TARGET_RATE = 2_000.0


async def one_reply_agent(call: AgentCall) -> int:
    """An agent that answers every run with one short result and exits 0."""
    call.emit({"status": "ok", "result": "ok"})
    return 0


@dataclass(frozen=True)
class Result:
    """One pass: how long it took and what it produced."""

    ingest: str
    concurrency: int
    messages: int
    ingest_seconds: float
    total_seconds: float
    runs: int
    runs_ok: int
    replies: int
    left_new: int
    dead: int
    transactions: int  # write transactions committed on the store during the pass, ingest included
    ingest_transactions: int  # the commits that stored the messages
    cpu_seconds: float  # this process's CPU time over the pass (every thread; a PostgreSQL server's is not in it)

    def lines(self) -> list[str]:
        rate = self.messages / self.total_seconds
        return [
            f"{self.ingest:<5} max_concurrent {self.concurrency:>2}: {self.messages:,} messages in "
            f"{self.total_seconds:6.2f} s "
            f"= {rate:7.0f} messages/s  (target ≥ {TARGET_RATE:,.0f}: {'met' if rate >= TARGET_RATE else 'MISSED'})",
            f"   ingest {self.ingest_seconds:5.2f} s ({self.messages / self.ingest_seconds:7.0f}/s)   "
            f"runs {self.runs:,} (ok {self.runs_ok:,}) = {self.runs / self.total_seconds:6.0f} runs/s, "
            f"{self.messages / max(self.runs, 1):.1f} messages/run   replies {self.replies:,}   "
            f"left new {self.left_new}   dead {self.dead}",
            f"   {self.transactions:,} transactions = {self.transactions / max(self.runs, 1):.2f} per run "
            f"(ingest's own included: {self.ingest_transactions:,})",
            f"   CPU {self.cpu_seconds:5.2f} s = {self.messages / max(self.cpu_seconds, 1e-9):7.0f} messages per CPU "
            "second (what one idle core would give; the load average above takes the rest)",
        ]


def inbound_waiting(store: Store) -> bool:
    """Whether an inbound row still waits (to be routed, or for its agent). An existence test, not a count: counting
    the rows still new cost PostgreSQL 3 ms a call (200 ms of server time a pass), taken from the gated measured."""
    query = select(exists().where(messages.c.direction == "in", messages.c.status == "new"))
    return bool(read_row(store, query)[0])


def batch_insert(store: Store, news: list[NewMessage]) -> None:
    """Every row in one transaction, with the values ``put_message`` would store for a new inbound row."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": uuid.uuid4().hex,
            "chat_jid": new.chat_jid,
            "direction": "in",
            "sender": new.sender,
            "content": new.content,
            "verb": new.verb,
            "topic": new.topic,
            "timestamp": now,
            "received_at": now,
            "status": "new",
        }
        for new in news
    ]
    with store.engine.execution_options(**WRITE).begin() as conn:  # a write transaction, as an adapter's would be
        conn.execute(insert(messages), rows)


def bench_folders(groups: int) -> list[str]:
    """The folders of ``groups`` groups: ``g0000`` …"""
    return [f"g{i:04d}" for i in range(groups)]


def bench_messages(folders: list[str], count: int) -> list[NewMessage]:
    """``count`` messages round-robin to the ``web:`` chats of ``folders``."""
    return [
        NewMessage(chat_jid=f"web:{folders[i % len(folders)]}", content=f"message {i}", sender="user:1")
        for i in range(count)
    ]


async def settle(gateway: Gateway, store: Store) -> None:
    """Return once the queue is idle and no inbound row is new (the store is asked only when the queue is idle)."""
    while True:
        counts = gateway.queue.counts()
        idle = not (counts.running or counts.waiting or counts.backing_off)
        if idle and not await asyncio.to_thread(inbound_waiting, store):
            return
        await asyncio.sleep(0.005)


async def put_all(gateway: Gateway, news: list[NewMessage], producers: int) -> None:
    """``news`` put by ``producers`` tasks at once, each one awaited put after another (message i by task i mod n)."""

    async def producer(first: int) -> None:
        for new in news[first::producers]:
            await gateway.put_message(new)

    await asyncio.gather(*(producer(first) for first in range(producers)))


class Writer:
    """The ``insert`` mode's writer: this script started again with ``--writer``, told the store's URL on its stdin
    (not in its argv, where a password would show), which connects, says it is ready, and starts putting at
    :meth:`go`."""

    def __init__(self, store: Store, *, groups: int, count: int) -> None:
        argv = [sys.executable, __file__, "--writer", "--groups", str(groups), "--messages", str(count)]
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        self._say(store.engine.url.render_as_string(hide_password=False))
        if self._stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the writer process did not start")

    def _say(self, line: str) -> None:
        self._stdin.write(f"{line}\n")
        self._stdin.flush()

    def go(self) -> None:
        self._say("go")

    def done(self) -> None:
        """Block until the writer has stored every message and exited."""
        self._stdout.read()
        if self._process.wait() != 0:
            raise RuntimeError(f"the writer process exited with {self._process.returncode}")

    def close(self) -> None:
        """Stop the writer if it still runs (a pass that failed)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def write_messages(groups: int, count: int) -> None:
    """The writer process: one ``put_message`` after another into the store whose URL is stdin's first line, once
    the second line arrives."""
    store = Store.open(sys.stdin.readline().strip(), pool_size=1)
    news = bench_messages(bench_folders(groups), count)
    store.max_seq()  # connected and warm before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    for new in news:
        store.put_message(new)
    store.close()


async def measure(
    store: Store, data_dir: Path, *, groups: int, count: int, concurrency: int, ingest: str, producers: int
) -> Result:
    """One pass on the fresh, empty ``store``."""
    folders = bench_folders(groups)
    for folder in folders:
        store.add_group(Group(folder=folder))
    runtime = InProcessRuntime(one_reply_agent)
    config = GatewayConfig(
        run=RunDefaults(instance="bench", data_dir=data_dir, runtime="inprocess", stop_grace=2.0),
        loop=LoopConfig(),  # production's 2 s poll: the wake-ups drive the work
        max_concurrent=concurrency,
    )
    gateway = Gateway(store, {"inprocess": runtime}, config)
    news = bench_messages(folders, count)
    stopping = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stopping))
    commits = [0]

    def count_writes(conn: Connection) -> None:  # reads end with a COMMIT too (kanmon.store.base: _read)
        commits[0] += WRITE.items() <= conn.get_execution_options().items()

    event.listen(store.engine, "commit", count_writes)
    writer: Writer | None = None
    try:
        if ingest == "insert":
            writer = await asyncio.to_thread(Writer, store, groups=groups, count=count)
        await asyncio.sleep(0.2)  # the start-up tick (recovery sweep) is not what is measured
        commits[0] = 0
        start, cpu = time.perf_counter(), time.process_time()
        if ingest == "batch":
            await asyncio.to_thread(batch_insert, store, news)
            gateway.wake()
        elif writer is not None:
            writer.go()
            await asyncio.to_thread(writer.done)
        else:
            await put_all(gateway, news, producers)
        ingested = time.perf_counter()
        await settle(gateway, store)
        done, cpu = time.perf_counter(), time.process_time() - cpu
        transactions = commits[0]
    finally:
        if writer is not None:
            writer.close()
        stopping.set()
        await serving
    writer_commits = count if writer is not None else 0  # the insert mode's writer commits once per message, elsewhere
    runs = await asyncio.to_thread(store.count_runs)
    counts = await asyncio.to_thread(store.counts)
    result = Result(
        ingest=ingest,
        concurrency=concurrency,
        messages=count,
        ingest_seconds=ingested - start,
        total_seconds=done - start,
        runs=sum(runs.values()),
        runs_ok=runs.get("ok", 0),
        replies=await asyncio.to_thread(run_replies, store),
        left_new=counts["inbound_new"],
        dead=counts["dead_letters"],
        transactions=transactions + writer_commits,
        ingest_transactions={"put": gateway.puts.commits, "insert": writer_commits}.get(ingest, 1),
        cpu_seconds=cpu,
    )
    return result


async def put_ceiling(store: Store, data_dir: Path, *, groups: int, count: int, producers: int) -> float:
    """Messages/s of :func:`put_all` into a gateway that is not serving."""
    config = GatewayConfig(run=RunDefaults(instance="bench", data_dir=data_dir, runtime="inprocess"))
    gateway = Gateway(store, {"inprocess": InProcessRuntime(one_reply_agent)}, config)
    news = bench_messages(bench_folders(groups), count)
    start = time.perf_counter()
    await put_all(gateway, news, producers)
    seconds = time.perf_counter() - start
    gateway.db.close()
    return count / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[5], help="max_concurrent values, one pass each")
    parser.add_argument(
        "--ingest",
        choices=["batch", "put", "insert"],
        nargs="+",
        default=["batch", "put"],
        help="see the module docstring",
    )
    parser.add_argument("--producers", type=int, default=1, help="tasks putting messages at once (put mode)")
    parser.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)  # the insert mode's own process
    add_url_option(parser)
    args = parser.parse_args()
    if args.writer:
        write_messages(args.groups, args.messages)
        return
    logging.basicConfig(level=logging.WARNING)
    print(
        f"{args.messages:,} messages over {args.groups:,} groups (web:<folder>), in-process one-reply agent; "
        f"put mode: {args.producers} producer(s)"
    )
    print(f"on {describe(args.url)}")
    with tempfile.TemporaryDirectory() as tmp:
        if "put" in args.ingest:
            with fresh_store(args.url, Path(tmp)) as store:
                ceiling = await put_ceiling(
                    store, Path(tmp) / "ceiling", groups=args.groups, count=args.messages, producers=args.producers
                )
            print(
                f"put   ceiling: {ceiling:7.0f} messages/s stored by {args.producers} producer(s) with nothing behind "
                "them (no routing, no runs)"
            )
        for ingest in args.ingest:
            for n in args.concurrency:
                with fresh_store(args.url, Path(tmp)) as store:
                    result = await measure(
                        store, Path(tmp) / f"{ingest}-{n}", groups=args.groups, count=args.messages, concurrency=n,
                        ingest=ingest, producers=args.producers,
                    )  # fmt: skip
                for line in result.lines():
                    print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
