"""gated's memory with 1,000 groups and 100,000 messages, and a restart that lost its poll cursor (issue 13).

    .venv/bin/python bench/rss.py [--groups 1000] [--messages 100000]

Each measurement runs in a child process of its own, so what is counted is one gated: the whole daemon (HTTP
surface on a free port, the gateway, the store) with the in-process one-reply agent, on an SQLite store.

* **RSS**: the messages are stored (one transaction), the daemon answers all of them; the child reports its peak
  RSS (``ru_maxrss``) and its RSS once idle again (target ≤ 80 MiB);
* **lost cursor**: on the same store, with ``--messages`` - 1,000 rows answered and 1,000 new ones, the poll cursor
  is deleted (as a restore from an old backup or a hand-edited store would leave it) and a new daemon starts; the
  child reports the seconds from start to its first run (target ≤ 5 s).

Prints figures and targets and exits 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchkit import describe
from sqlalchemy import delete, insert

RSS_TARGET_MIB = 80.0
RESTART_TARGET_S = 5.0


def vm_rss_mib(field: str = "VmRSS") -> float:
    """This process's resident set size now (``VmHWM``: its peak), in MiB.

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a child started from a big parent would report the
    parent's size as its own peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fill(db_path: Path, groups: int, count: int, *, answered: int = 0) -> None:
    """Store ``count`` inbound messages round-robin over ``groups`` web chats; the first ``answered`` already done."""
    from kanmon.store import Group, Store, upgrade
    from kanmon.store.tables import messages

    store = Store.open(f"sqlite:///{db_path}")
    upgrade(store.engine)
    if not store.list_groups():
        for n in range(groups):
            store.add_group(Group(folder=f"g{n:04d}", container_config={"runtime": "inprocess"}))
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": uuid.uuid4().hex, "chat_jid": f"web:g{n % groups:04d}", "direction": "in", "sender": "user:1",
            "content": f"message {n}", "verb": "message", "topic": "", "timestamp": now, "received_at": now,
            "status": "done" if n < answered else "new",
            "routed_folder": f"g{n % groups:04d}" if n < answered else None,
        }
        for n in range(count)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(messages), rows[start : start + 20_000])
    store.close()


async def child_serve(db_path: Path, until_first_run: bool) -> dict[str, float]:
    """One daemon on ``db_path`` until every message is answered (or until its first run); what it measured."""
    from kanmon.container import AgentCall, InProcessRuntime
    from kanmon.gated.config import load_settings
    from kanmon.gated.daemon import Daemon
    from kanmon.serving import listen
    from kanmon.store import Store

    async def one_reply(call: AgentCall) -> int:
        call.emit({"status": "ok", "result": "ok"})
        return 0

    began = time.perf_counter()
    settings = load_settings(data_dir=str(db_path.parent), config_path=None, environ={}, overrides={})
    store = Store.open(f"sqlite:///{db_path}")
    runtime = InProcessRuntime(one_reply)
    daemon = Daemon(settings, store, listener=listen("127.0.0.1:0"), runtimes={"inprocess": runtime})
    serving = asyncio.create_task(daemon.run())
    first_run = None
    while True:
        await asyncio.sleep(0.01)
        if first_run is None and runtime.started:
            first_run = time.perf_counter() - began
            if until_first_run:
                break
        if (
            runtime.started
            and not runtime.running
            and await asyncio.to_thread(lambda: store.counts()["inbound_new"]) == 0
        ):
            break
    daemon.gateway.stop()
    serving.cancel()
    gc.collect()
    await asyncio.sleep(0.5)
    return {
        "first_run": first_run or 0.0,
        "peak": vm_rss_mib("VmHWM"),
        "idle": vm_rss_mib(),
        "runs": float(runtime.started),
    }


def child(args: argparse.Namespace) -> None:
    from kanmon.gated.memory import limit_malloc_arenas

    limit_malloc_arenas()  # as `gated` does first thing
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(child_serve(Path(args.db), args.first_run_only))))


def run_child(db: Path, *flags: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--db", str(db), *flags], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first-run-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"{args.messages:,} messages over {args.groups:,} groups; on {describe('')}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "kanmon.db"
        fill(db, args.groups, args.messages)
        served = run_child(db)
        print(
            f"RSS: peak {served['peak']:.1f} MiB, idle {served['idle']:.1f} MiB after {served['runs']:,.0f} runs "
            f"(target ≤ {RSS_TARGET_MIB:.0f} MiB: {'met' if served['peak'] <= RSS_TARGET_MIB else 'MISSED'})"
        )
        lost = Path(tmp) / "lost.db"
        fill(lost, args.groups, args.messages, answered=args.messages - 1000)
        from kanmon.store import Store
        from kanmon.store.tables import router_state

        store = Store.open(f"sqlite:///{lost}")
        with store.engine.begin() as conn:
            conn.execute(delete(router_state))  # the poll cursor is gone
        store.close()
        restarted = run_child(lost, "--first-run-only")
        print(
            f"restart with a lost poll cursor over {args.messages - 1000:,} answered rows: first run after "
            f"{restarted['first_run']:.2f} s (target ≤ {RESTART_TARGET_S:.0f} s: "
            f"{'met' if restarted['first_run'] <= RESTART_TARGET_S else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
