"""The promise no anchor kept, under fire: SIGKILL `gated run` again and again while 500 messages flow through it.

A driver puts 500 messages into 20 chats while it kills the daemon with SIGKILL at random moments (no drain, no
cleanup code runs) at least five times, restarting it each time. The agent answers each message after a random
0–2 s, so kills land before, during and after runs, between outputs and between a run's end and its bookkeeping.
At the end every message has exactly one reply, nothing was dead-lettered, nothing of this instance is left running,
and a neighbouring kanmon instance's container on the same engine was never touched.

Runs once on the process runtime and once on Docker (marked ``docker``); the counts are printed either way.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kanmon.container.docker import DockerRuntime
from kanmon.container.process import ProcessRuntime
from kanmon.store import Group, NewMessage, Store, upgrade
from tests.gateway_harness import ECHO_COMMAND

pytestmark = pytest.mark.slow

CHATS = 20
MESSAGES = 500
KILLS = 5
AGENT_ENV = {"ECHO_DELAY_MAX": "2.0"}
FINISH_WITHIN = 420.0
GATED_RUN = [sys.executable, "-m", "kanmon"]  # seconds after the last restart


@pytest.fixture
def instance() -> str:
    return f"chaos{uuid.uuid4().hex[:8]}"


class Gated:
    """`gated run` as a child process that the driver kills and restarts."""

    def __init__(self, data_dir: Path, instance: str, log: Path) -> None:
        self.data_dir = data_dir
        self.instance = instance
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        env = {**os.environ, "KANMON_POLL_INTERVAL": "0.3", "KANMON_RETRY_BASE_DELAY": "0.5"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*GATED_RUN, "--data-dir", str(self.data_dir), "run", "--no-http", "--instance", self.instance],
                stdout=log,
                stderr=log,
                env=env,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def reply_counts(store: Store) -> tuple[collections.Counter[str], int, int]:
    """How often each message text was answered, how many rows are dead, how many still wait."""
    rows = store.new_messages(0, limit=10 * MESSAGES)
    answered = collections.Counter(row.content.removeprefix("echo: ") for row in rows if row.direction == "out")
    dead = sum(1 for row in rows if row.direction == "in" and row.status == "dead")
    waiting = sum(1 for row in rows if row.direction == "in" and row.status == "new")
    return answered, dead, waiting


def explain(store: Store, answered: collections.Counter[str], log: Path) -> str:
    """What to look at when the counts are wrong: the duplicated replies with their runs, and those runs' log lines."""
    twice = {text for text, count in answered.items() if count > 1}
    rows = [row for row in store.new_messages(0, limit=10 * MESSAGES) if row.direction == "out"]
    runs = {row.run_id for row in rows if row.content.removeprefix("echo: ") in twice}
    lines = [f"{row.seq} {row.run_id}#{row.output_index} {row.content}" for row in rows if row.run_id in runs]
    history = [line for line in log.read_text().splitlines() if any(run and run in line for run in runs)]
    return "\n".join(["duplicated replies and their runs:", *lines, "their log lines:", *history])


async def drive(tmp_path: Path, instance: str, groups: list[Group], runtime: Any, seed: int) -> None:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    upgrade(store.engine)
    for group in groups:
        store.add_group(group)
    rng = random.Random(seed)
    gated = Gated(data, instance, tmp_path / "gated.log")
    gated.start()
    texts = [f"c{n % CHATS:02d}-m{n:03d}" for n in range(MESSAGES)]
    try:
        kill_at = sorted(rng.uniform(1.0, 40.0) for _ in range(KILLS + 2))
        began = time.monotonic()
        sent = 0
        while sent < MESSAGES or kill_at:
            now = time.monotonic() - began
            if kill_at and now >= kill_at[0]:
                kill_at.pop(0)
                gated.kill()
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                gated.start()
            for _ in range(min(rng.randint(5, 20), MESSAGES - sent)):
                text = texts[sent]
                await asyncio.to_thread(
                    store.put_message, NewMessage(chat_jid=f"web:g{text[1:3]}", content=text, sender="driver")
                )
                sent += 1
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        deadline = time.monotonic() + FINISH_WITHIN
        while time.monotonic() < deadline:
            answered, dead, waiting = await asyncio.to_thread(reply_counts, store)
            if not waiting and len(answered) >= MESSAGES:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # a duplicate that was about to be stored would land now
        gated.stop()
        answered, dead, waiting = reply_counts(store)
        duplicates = sum(count - 1 for count in answered.values() if count > 1)
        lost = sum(1 for text in texts if answered[text] == 0)
        print(
            f"\nchaos ({type(runtime).__name__}, seed {seed}): sent {MESSAGES}, answered {len(answered)}, "
            f"duplicates {duplicates}, lost {lost}, dead {dead}, kills {gated.kills}, runs {store.count_runs()}"
        )
        assert gated.kills >= KILLS
        assert (duplicates, lost, dead, waiting) == (0, 0, 0, 0), explain(store, answered, tmp_path / "gated.log")
        assert await runtime.list_runs(instance) == []  # nothing of this instance is left running or lying around
    finally:
        gated.stop()
        store.close()


async def test_sigkill_chaos_on_the_process_runtime_loses_and_repeats_nothing(tmp_path: Path, instance: str) -> None:
    groups = [
        Group(folder=f"g{n:02d}", container_config={"runtime": "process", "command": ECHO_COMMAND, "env": AGENT_ENV})
        for n in range(CHATS)
    ]
    runtime = ProcessRuntime(tmp_path / "data" / "runs")
    await drive(
        tmp_path,
        instance,
        groups,
        runtime,
        seed=int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1 << 30))),
    )


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
    groups = [
        Group(folder=f"g{n:02d}", container_config={"runtime": "docker", "image": echo_image, "env": AGENT_ENV})
        for n in range(CHATS)
    ]
    runtime = DockerRuntime(data_dir=tmp_path / "data", client=docker_client)
    try:
        await drive(
            tmp_path,
            instance,
            groups,
            runtime,
            seed=int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1 << 30))),
        )
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
            container.remove(force=True)
    neighbour.reload()
    assert neighbour.status == "running"
