"""The promise no anchor kept, under fire: SIGKILL `gated run` again and again while 500 messages flow through it.

A driver puts 500 messages into 20 chats while it kills the daemon with SIGKILL at random moments (no drain, no
cleanup code runs) at least five times, restarting it each time. The agent answers each message after a random
0–2 s, so kills land before, during and after runs, between outputs and between a run's end and its bookkeeping.
At the end every message has exactly one reply, nothing was dead-lettered, nothing of this instance is left running,
and a neighbouring kanmon instance's container on the same engine was never touched.

Runs on the process runtime with SQLite, on Docker (marked ``docker``), and on PostgreSQL with the database server
itself restarted once in the middle of the kills (``pg_ctl restart -m fast``: every session ends, gated waits the
outage out and the driver retries its puts, as an adapter would; 250 messages there, the same kills). The counts
are printed either way; ``CHAOS_SEED`` replays one schedule.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kanmon.container.docker import DockerRuntime
from kanmon.container.process import ProcessRuntime
from kanmon.store import Group, NewMessage, Store, StoreUnavailable, upgrade
from tests.gated_process import Gated
from tests.gateway_harness import ECHO_COMMAND
from tests.pgdb import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHATS = 20
MESSAGES = 500
KILLS = 5
AGENT_ENV = {"ECHO_DELAY_MAX": "2.0"}
FINISH_WITHIN = 420.0  # seconds after the last restart
FAST = {"KANMON_POLL_INTERVAL": "0.3", "KANMON_RETRY_BASE_DELAY": "0.5", "KANMON_STORE_LOCK_CHECK_INTERVAL": "0.5"}
T = TypeVar("T")


@pytest.fixture
def instance() -> str:
    return f"chaos{uuid.uuid4().hex[:8]}"


@dataclass
class Tally:
    """How the 500 messages ended: replies per text, dead-lettered and still-waiting inbound rows."""

    answered: collections.Counter[str]
    dead: int
    waiting: int


def tally(store: Store) -> Tally:
    rows = store.new_messages(0, limit=10 * MESSAGES)
    answered = collections.Counter(row.content.removeprefix("echo: ") for row in rows if row.direction == "out")
    dead = sum(1 for row in rows if row.direction == "in" and row.status == "dead")
    waiting = sum(1 for row in rows if row.direction == "in" and row.status == "new")
    return Tally(answered, dead, waiting)


def explain(store: Store, answered: collections.Counter[str], log: Path) -> str:
    """What to look at when the counts are wrong: the duplicated replies with their runs, and those runs' log lines."""
    twice = {text for text, count in answered.items() if count > 1}
    rows = [row for row in store.new_messages(0, limit=10 * MESSAGES) if row.direction == "out"]
    runs = {row.run_id for row in rows if row.content.removeprefix("echo: ") in twice}
    lines = [f"{row.seq} {row.run_id}#{row.output_index} {row.content}" for row in rows if row.run_id in runs]
    history = [line for line in log.read_text().splitlines() if any(run and run in line for run in runs)]
    return "\n".join(["duplicated replies and their runs:", *lines, "their log lines:", *history])


async def through_outages(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a thread, retried while the database is away (a restart takes a second or two)."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(StoreUnavailable), wait=wait_fixed(0.2), stop=stop_after_delay(60), reraise=True
    )
    async for attempt in retrying:
        with attempt:
            return await asyncio.to_thread(call, *args)
    raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or reraises


async def drive(
    tmp_path: Path,
    instance: str,
    groups: list[Group],
    runtime: Any,
    seed: int,
    *,
    pg: PrivatePostgres | None = None,
    total: int = MESSAGES,
) -> None:
    """Send ``total`` messages, kill and restart as the module says; with ``pg`` the store lives there and is
    restarted once."""
    data = tmp_path / "data"
    data.mkdir(parents=True)
    url = pg.url if pg is not None else f"sqlite:///{data / 'kanmon.db'}"
    store = Store.open(url)
    upgrade(store.engine)
    for group in groups:
        store.add_group(group)
    rng = random.Random(seed)
    env = {**FAST, "KANMON_STORE_URL": url}
    gated = Gated(data, tmp_path / "gated.log", args=["--no-http", "--instance", instance], env=env).start()
    started_at = 0  # where the log of the gated started last begins
    texts = [f"c{n % CHATS:02d}-m{n:03d}" for n in range(total)]
    try:
        kill_at = sorted(rng.uniform(1.0, 40.0) for _ in range(KILLS + 2))
        restart_at = restart_time(kill_at) if pg is not None else None
        began = time.monotonic()
        sent = 0
        while sent < total or kill_at:
            now = time.monotonic() - began
            if kill_at and now >= kill_at[0]:
                kill_at.pop(0)
                gated.kill()
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                started_at = len(gated.logged())
                gated.start()
            if pg is not None and restart_at is not None and now >= restart_at:
                restart_at = None
                # under a gated that holds the store (not one still starting after a kill), which must notice it
                await holding(gated, started_at)
                await asyncio.to_thread(pg.restart)
                await asyncio.to_thread(gated.wait_logged, "store lock lost", 30.0)
            for _ in range(min(rng.randint(5, 20), total - sent)):
                text = texts[sent]
                message = NewMessage(chat_jid=f"web:g{text[1:3]}", content=text, sender="driver", id=text)
                await through_outages(store.put_message, message)
                sent += 1
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        deadline = time.monotonic() + FINISH_WITHIN
        while time.monotonic() < deadline:
            seen = await through_outages(tally, store)
            if not seen.waiting and len(seen.answered) >= total:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # a duplicate that was about to be stored would land now
        gated.stop()
        seen = tally(store)
        duplicates = sum(count - 1 for count in seen.answered.values() if count > 1)
        lost = sum(1 for text in texts if seen.answered[text] == 0)
        where = "PostgreSQL, restarted once" if pg is not None else "SQLite"
        print(
            f"\nchaos ({type(runtime).__name__}, {where}, seed {seed}): sent {total}, "
            f"answered {len(seen.answered)}, duplicates {duplicates}, "
            f"lost {lost}, dead {seen.dead}, kills {gated.kills}, runs {store.count_runs()}"
        )
        assert gated.kills >= KILLS
        if pg is not None:  # the restart landed on a running gated, which noticed it
            assert "store lock lost" in gated.logged(), gated.logged()[-3000:]
        outcome = (duplicates, lost, seen.dead, seen.waiting)
        assert outcome == (0, 0, 0, 0), explain(store, seen.answered, gated.log)
        assert await runtime.list_runs(instance) == []  # nothing of this instance is left running or lying around
    finally:
        gated.stop()
        store.close()


async def holding(gated: Gated, started_at: int, timeout: float = 60.0) -> None:
    """Wait until the gated started last (its log from ``started_at`` on) holds the store."""
    deadline = time.monotonic() + timeout
    while "holding the store" not in gated.logged()[started_at:]:
        assert gated.alive and time.monotonic() < deadline, gated.logged()[-3000:]
        await asyncio.sleep(0.1)


def restart_time(kill_at: list[float]) -> float:
    """When to restart the database: amid the widest gap between two kills, so that a gated is up to feel it."""
    gaps = zip([0.0, *kill_at], kill_at, strict=False)
    start, end = max(gaps, key=lambda gap: gap[1] - gap[0])
    return (start + end) / 2


def chaos_seed() -> int:
    return int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1 << 30)))


def process_groups() -> list[Group]:
    config = {"runtime": "process", "command": ECHO_COMMAND, "env": AGENT_ENV}
    return [Group(folder=f"g{n:02d}", container_config=config) for n in range(CHATS)]


async def test_sigkill_chaos_on_the_process_runtime_loses_and_repeats_nothing(tmp_path: Path, instance: str) -> None:
    runtime = ProcessRuntime(tmp_path / "data" / "runs")
    await drive(tmp_path, instance, process_groups(), runtime, chaos_seed())


@pytest.mark.postgres
async def test_sigkill_chaos_with_a_postgres_restart_loses_and_repeats_nothing(
    tmp_path: Path, instance: str, private_pg: PrivatePostgres
) -> None:
    runtime = ProcessRuntime(tmp_path / "data" / "runs")
    # fewer messages than the other two (the same kills, plus the restart): the suite's time goes to draining them
    await drive(tmp_path, instance, process_groups(), runtime, chaos_seed(), pg=private_pg, total=MESSAGES // 2)


@pytest.fixture
def neighbour(docker_client: Any, echo_image: str, instance: str) -> Iterator[Any]:
    """Another kanmon install's run on the same engine, in flight for the whole test."""
    labels = {"kanmon.instance": f"{instance}-neighbour", "kanmon.run": "n1", "kanmon.folder": "corp"}
    container = docker_client.containers.run(echo_image, ["sleep", "3600"], labels=labels, detach=True)
    yield container
    container.remove(force=True)


@pytest.mark.docker
async def test_sigkill_chaos_on_docker_loses_and_repeats_nothing_and_spares_other_instances(
    tmp_path: Path, instance: str, docker_client: Any, echo_image: str, neighbour: Any
) -> None:
    config = {"runtime": "docker", "image": echo_image, "env": AGENT_ENV}
    groups = [Group(folder=f"g{n:02d}", container_config=config) for n in range(CHATS)]
    runtime = DockerRuntime(data_dir=tmp_path / "data", client=docker_client)
    try:
        await drive(tmp_path, instance, groups, runtime, chaos_seed())
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
            container.remove(force=True)
    neighbour.reload()
    assert neighbour.status == "running"
