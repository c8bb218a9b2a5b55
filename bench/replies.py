"""Recording one run's replies (issue 13: ≥ 5,000 replies/s for 100,000 tiny output blocks).

    .venv/bin/python bench/replies.py [--blocks 100000] [--url postgresql+psycopg://…/postgres]

One group on :class:`kanmon.container.InProcessRuntime`: its agent writes ``--blocks`` output blocks of a few bytes
each (``{"status": "ok", "result": "r<n>"}``) as fast as it can, then exits 0. The run's reply cap
(``runtime.max_replies``, 500 in production) is raised above ``--blocks`` so every block becomes a reply row. The
clock runs from the wake-up that starts the run until the queue is idle with every reply stored: the protocol parser,
the recorder's batched transactions (``kanmon/gateway/recorder.py``) and the run's last transaction together.
Prints the figure and the target; exits 0 either way (figures, not timed tests).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from benchkit import add_url_option, describe, fresh_store, run_replies

from kanmon.container import AgentCall, InProcessRuntime
from kanmon.gateway import Gateway, GatewayConfig, LoopConfig, RunDefaults
from kanmon.store import Group, NewMessage, Store

TARGET_RATE = 5_000.0


async def measure(store: Store, data_dir: Path, blocks: int) -> tuple[float, float, int]:
    """Seconds from the wake-up to every reply stored, this process's CPU seconds meanwhile, and how many were."""

    async def chatty_agent(call: AgentCall) -> int:
        for n in range(blocks):
            call.emit({"status": "ok", "result": f"r{n}"})
            if n % 1000 == 999:
                await asyncio.sleep(0)  # a real agent's writes interleave with gated's reading
        return 0

    store.add_group(Group(folder="chatty"))
    config = GatewayConfig(
        run=RunDefaults(
            instance="bench", data_dir=data_dir, runtime="inprocess", max_replies=blocks + 1, timeout=3600.0
        ),
        loop=LoopConfig(),
    )
    gateway = Gateway(store, {"inprocess": InProcessRuntime(chatty_agent)}, config)
    stopping = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stopping))
    try:
        await asyncio.sleep(0.2)  # the start-up tick is not what is measured
        await asyncio.to_thread(store.put_message, NewMessage(chat_jid="web:chatty", content="go", sender="user:1"))
        start, cpu = time.perf_counter(), time.process_time()
        gateway.wake()
        busy = False
        while True:  # until the run has been queued, and the queue is idle again
            counts = gateway.queue.counts()
            idle = not (counts.running or counts.waiting or counts.backing_off)
            if busy and idle:
                break
            busy = busy or not idle
            await asyncio.sleep(0.005)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        stopping.set()
        await serving
    return seconds, cpu, await asyncio.to_thread(run_replies, store)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    add_url_option(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"one run writing {args.blocks:,} tiny output blocks, in-process agent")
    print(f"on {describe(args.url)}")
    with tempfile.TemporaryDirectory() as tmp, fresh_store(args.url, Path(tmp)) as store:
        seconds, cpu, stored = await measure(store, Path(tmp), args.blocks)
    rate = stored / seconds
    print(
        f"{stored:,} of {args.blocks:,} replies stored in {seconds:.2f} s = {rate:,.0f} replies/s "
        f"(target ≥ {TARGET_RATE:,.0f}: {'met' if rate >= TARGET_RATE else 'MISSED'})"
    )
    print(
        f"CPU {cpu:.2f} s = {stored / max(cpu, 1e-9):,.0f} replies per CPU second (what one idle core would give; "
        "a PostgreSQL server's CPU is not in it)"
    )


if __name__ == "__main__":
    asyncio.run(main())
