"""A run's bookkeeping in the store alone: CPU per run for ``begin_runs`` + one reply + ``finish_runs`` (issue 13).

    .venv/bin/python bench/run_store.py [--runs 2000] [--groups 200] [--url postgresql+psycopg://…/postgres]

``--runs`` messages are stored round-robin in ``web:<folder>`` chats of ``--groups`` groups and routed; then one run
after another begins on a folder's next message (a batch of one), records one reply with its outcome and advances
the chat's cursor: the two write transactions every run makes, with nothing else around them (no loop, no agent).
Prints CPU and wall time per run, and the statements per run; asserts nothing (these machines are shared and noisy).

Measured on this machine kind under a load average of about 5 (other test runs), 1,000 runs, before and after the
run path's statements were built once: SQLite 6.22 → 2.35 ms CPU per run, PostgreSQL 8.40 → 4.32 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from benchkit import add_url_option, describe, fresh_store
from sqlalchemy import event, func, update

from kanmon.store import Group, NewMessage, Store
from kanmon.store.lanes import LaneHead
from kanmon.store.runs import RunBegin, RunDraft, RunEnd
from kanmon.store.tables import messages


def fill(store: Store, runs: int, groups: int, now: dt.datetime) -> None:
    """``groups`` groups and ``runs`` routed messages, round-robin over their web chats."""
    for g in range(groups):
        store.add_group(Group(folder=f"g{g:04d}"))
    for n in range(runs):
        store.put_message(NewMessage(chat_jid=f"web:g{n % groups:04d}", content=f"m{n}", id=f"m{n}"), now=now)
    with store.engine.begin() as conn:  # routed as the loop would: to the folder the chat is named after
        conn.execute(update(messages).values(routed_folder=func.substr(messages.c.chat_jid, 5), routed_topic=""))


def one_run(store: Store, n: int, groups: int, now: dt.datetime) -> None:
    """Begin a run on folder ``n % groups``'s next message, then end it ok with one reply."""
    folder, run_id = f"g{n % groups:04d}", f"run-{n}"
    draft = RunDraft(id=run_id, instance="bench", runtime="process", started_at=now)

    def any_head(head: LaneHead) -> bool:
        return True

    (start,) = store.begin_runs([RunBegin(draft=draft, folder=folder, accept=any_head, limit=1)], now=now)
    assert start is not None, f"nothing waited for {folder}"
    reply = NewMessage(
        chat_jid=start.head.chat_jid, content="ok", direction="out", run_id=run_id, output_index=0, delivered=True
    )
    end = RunEnd(
        run_id=run_id,
        chat_jid=start.head.chat_jid,
        seqs=[row.seq for row in start.rows],
        rows="done",
        run_status="ok",
        folder=folder,
        topic="",
        output_count=1,
        replies=[reply],
    )
    store.finish_runs([end], now=now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=200)
    add_url_option(parser)
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as tmp, fresh_store(args.url, Path(tmp)) as store:
        fill(store, args.runs, args.groups, now)
        statements = 0

        def count(*_: object) -> None:
            nonlocal statements
            statements += 1

        event.listen(store.engine, "before_cursor_execute", count)
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(args.runs):
            one_run(store, n, args.groups, now)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{args.runs:,} runs of one message over {args.groups:,} groups, {describe(args.url)}")
    print(
        f"  {1000 * cpu / args.runs:.2f} ms CPU/run, {1000 * wall / args.runs:.2f} ms wall/run, "
        f"{statements / args.runs:.1f} statements/run"
    )


if __name__ == "__main__":
    main()
