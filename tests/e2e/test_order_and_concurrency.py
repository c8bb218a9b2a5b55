"""Order, the concurrency cap, fairness and one-run-per-folder, end to end through the real gateway.

The anchor bugs (research/arizuko.md §11, nanoclaw.md §8) this file guards against:

- a group that finished a run was restarted at once, ahead of every group waiting for a slot, so one chatty group
  starved all others (NanoClaw, arizuko): `test_a_chat_that_keeps_sending_cannot_starve_two_others`;
- the queue was keyed by chat JID, so two chats routed to one folder ran two agents on the same files and session
  at once (arizuko): `test_two_chats_of_one_folder_take_turns`, and per folder in the concurrency test;
- messages answered out of order, twice, or not at all when many arrive at once, and more containers than the cap
  running together: `test_fifty_messages_to_one_chat_are_answered_once_each_in_order`,
  `test_twenty_busy_chats_never_run_more_than_five_agents_or_two_in_one_folder`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kanmon.store import Group, Run
from tests.gateway_harness import Harness, docker_group, process_group, running_gateway


@pytest.fixture(
    params=[pytest.param("process", id="process"), pytest.param("docker", marks=pytest.mark.docker, id="docker")]
)
def runtime(request: pytest.FixtureRequest) -> str:
    """The runtime the groups' agents run on."""
    return str(request.param)


@dataclass
class Backend:
    """How to make groups on the chosen runtime, and what the gateway needs to run them."""

    runtime: str
    instance: str
    docker_client: Any = None
    image: str | None = None

    def group(self, folder: str, env: dict[str, Any] | None = None) -> Group:
        if self.runtime == "docker":
            assert self.image is not None
            return docker_group(folder, self.image, env=env)
        return process_group(folder, env=env)


@pytest.fixture
def backend(runtime: str, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A unique instance; for Docker also the client and echo image, and removal of leftover containers."""
    instance = f"t{uuid.uuid4().hex[:10]}"
    if runtime != "docker":
        yield Backend(runtime, instance)
        return
    client = request.getfixturevalue("docker_client")
    image = request.getfixturevalue("echo_image")
    try:
        yield Backend(runtime, instance, client, image)
    finally:
        for container in client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
            container.remove(force=True)


# ---------------------------------------------------------------------------------------------------------- helpers
@dataclass
class QueueSampler:
    """Samples the queue's running lanes every ``interval`` s in the test's event loop."""

    harness: Harness
    interval: float = 0.02
    max_running: int = 0
    samples: int = 0
    # folders with two running lanes in one sample (these tests use no parallel web topics)
    doubled: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            lanes = self.harness.gateway.queue.running()
            self.samples += 1
            self.max_running = max(self.max_running, len(lanes))
            folders = [lane.folder for lane in lanes]
            self.doubled += [folder for folder in set(folders) if folders.count(folder) > 1]
            await asyncio.sleep(self.interval)

    def __enter__(self) -> QueueSampler:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclass
class DockerSampler:
    """Samples ``docker ps`` for the instance's running containers in a thread."""

    client: Any
    instance: str
    max_running: int = 0
    samples: int = 0
    doubled: list[str] = field(default_factory=list)  # folders with two running containers in one sample
    error: BaseException | None = None  # why sampling stopped early, if it did
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        filters = {"label": f"kanmon.instance={self.instance}", "status": "running"}
        try:
            self._loop(filters)
        except BaseException as exc:
            self.error = exc

    def _loop(self, filters: dict[str, str]) -> None:
        while not self._stop.is_set():
            # `docker ps` itself: the high-level containers.list inspects each one and races their removal
            containers = self.client.api.containers(filters=filters)
            self.samples += 1
            self.max_running = max(self.max_running, len(containers))
            folders = [(container.get("Labels") or {}).get("kanmon.folder", "") for container in containers]
            self.doubled += [folder for folder in set(folders) if folders.count(folder) > 1]
            self._stop.wait(0.02)

    def __enter__(self) -> DockerSampler:
        self._thread = threading.Thread(target=self._sample, name="docker-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None
        self._stop.set()
        self._thread.join(timeout=30)


def overlapping_runs(runs: list[Run]) -> list[tuple[str, str]]:
    """Pairs of runs of one folder whose [started_at, ended_at] intervals overlap (every run must have ended)."""
    by_folder: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        assert run.ended_at is not None, f"run {run.id} of {run.group_folder} never ended"
        by_folder[run.group_folder].append(run)
    overlaps = []
    for folder_runs in by_folder.values():
        folder_runs.sort(key=lambda run: run.started_at)
        for before, after in itertools.pairwise(folder_runs):
            assert before.ended_at is not None
            if after.started_at < before.ended_at:
                overlaps.append((before.id, after.id))
    return overlaps


def most_at_once(runs: list[Run]) -> int:
    """The largest number of runs whose session_log intervals overlap at one instant."""
    events: list[tuple[dt.datetime, int]] = []
    for run in runs:
        assert run.ended_at is not None
        events += [(run.started_at, 1), (run.ended_at, -1)]
    events.sort(key=lambda event: (event[0], event[1]))  # an end at the same instant as a start comes first
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def assert_all_consumed(h: Harness, chat_jid: str, count: int) -> None:
    """Every inbound row of ``chat_jid`` is done and its agent cursor stands at the last one."""
    inbound = h.inbound(chat_jid)
    assert len(inbound) == count
    assert [row.status for row in inbound] == ["done"] * count
    assert h.store.agent_cursor(chat_jid) == inbound[-1].seq


def timeout_for(backend: Backend) -> float:
    return 180.0 if backend.runtime == "docker" else 60.0


# ---------------------------------------------------------------------------------------------------------- tests
async def test_fifty_messages_to_one_chat_are_answered_once_each_in_order(tmp_path: Path, backend: Backend) -> None:
    async with running_gateway(
        tmp_path / "data", [backend.group("solo")], instance=backend.instance, docker_client=backend.docker_client
    ) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:1", target="solo")
        expected = [f"echo: m{i}" for i in range(50)]
        for i in range(50):
            await h.send("telegram:1", f"m{i}")
            if i % 10 == 9:
                await asyncio.sleep(0.05)  # let some runs start mid-stream, so the answers come in several batches
        await h.wait_for(lambda: len(h.replies("telegram:1")) >= 50, "fifty replies", timeout=timeout_for(backend))
        await h.settled(timeout=timeout_for(backend))

        assert h.replies("telegram:1") == expected
        assert h.replies() == expected  # nothing went to any other chat
        assert_all_consumed(h, "telegram:1", 50)
        runs = sorted(h.store.recent_runs(1000), key=lambda run: run.started_at)
        assert [run.status for run in runs] == ["ok"] * len(runs)
        assert {run.group_folder for run in runs} == {"solo"}
        # the batches partition the fifty messages: consecutive, no row in two runs, none left out
        inbound = [row.seq for row in h.inbound("telegram:1")]
        batches = [[seq for seq in inbound if run.first_seq <= seq <= run.last_seq] for run in runs]  # type: ignore[operator]
        assert [seq for batch in batches for seq in batch] == inbound
        assert [len(batch) for batch in batches] == [run.message_count for run in runs]
        assert sum(run.output_count for run in runs) == 50
        assert overlapping_runs(runs) == []


async def test_twenty_busy_chats_never_run_more_than_five_agents_or_two_in_one_folder(
    tmp_path: Path, backend: Backend
) -> None:
    folders = [f"g{n:02d}" for n in range(20)]
    groups = [backend.group(folder, env={"ECHO_DELAY": 0.1}) for folder in folders]
    expected = {n: [f"echo: c{n}-m{i}" for i in range(10)] for n in range(20)}
    async with running_gateway(
        tmp_path / "data", groups, instance=backend.instance, docker_client=backend.docker_client, max_concurrent=5
    ) as h:
        for n, folder in enumerate(folders):
            h.store.add_route(seq=n, match=f"chat_jid=telegram:{n}", target=folder)

        async def chat(n: int) -> None:
            for i in range(10):  # in order within a chat, all chats at once
                await h.send(f"telegram:{n}", f"c{n}-m{i}")

        def all_answered() -> bool:
            return all(len(h.replies(f"telegram:{n}")) >= 10 for n in range(20))

        docker = DockerSampler(backend.docker_client, backend.instance) if backend.docker_client else None
        with QueueSampler(h) as queue:
            if docker is not None:
                docker.__enter__()
            try:
                await asyncio.gather(*(chat(n) for n in range(20)))
                await h.wait_for(all_answered, "every chat's ten replies", timeout=timeout_for(backend))
                await h.settled(timeout=timeout_for(backend))
            finally:
                if docker is not None:
                    await asyncio.to_thread(docker.__exit__)

        for n in range(20):
            assert h.replies(f"telegram:{n}") == expected[n], f"telegram:{n}"
            assert_all_consumed(h, f"telegram:{n}", 10)
        assert len(h.replies()) == 200

        # the cap was reached and never passed, in the queue's own view and in the engine's
        assert queue.samples > 10
        assert queue.max_running == 5
        assert queue.doubled == []
        if docker is not None:
            assert docker.error is None
            assert docker.samples > 10
            assert docker.max_running == 5
            assert docker.doubled == []

        runs = h.store.recent_runs(1000)
        assert [run.status for run in runs] == ["ok"] * len(runs)
        assert {run.group_folder for run in runs} == set(folders)
        assert sum(run.message_count for run in runs) == 200
        assert overlapping_runs(runs) == []
        assert most_at_once(runs) <= 5


async def test_a_chat_that_keeps_sending_cannot_starve_two_others(tmp_path: Path) -> None:
    groups = [
        # each busy run answers only its last message and takes a while, so new messages always wait behind it
        process_group("busy", env={"ECHO_DELAY": 0.2, "ECHO_LAST_ONLY": 1}),
        process_group("quiet1"),
        process_group("quiet2"),
    ]
    async with running_gateway(tmp_path / "data", groups, max_concurrent=1) as h:
        stop_sending = asyncio.Event()
        busy_sent: list[str] = []

        async def keep_sending() -> None:
            while not stop_sending.is_set():
                text = f"b{len(busy_sent)}"
                await h.send("web:busy", text)
                busy_sent.append(text)
                await asyncio.sleep(0.05)

        def busy_runs() -> list[Run]:
            return [run for run in h.store.recent_runs(1000) if run.group_folder == "busy"]

        sender = asyncio.create_task(keep_sending())
        try:
            await h.wait_for(lambda: len(busy_runs()) >= 2, "the busy chat's second run")
            q1 = await h.send("web:quiet1", "q1")
            q2 = await h.send("web:quiet2", "q2")
            await h.wait_for(
                lambda: h.replies("web:quiet1") == ["echo: q1"] and h.replies("web:quiet2") == ["echo: q2"],
                "both quiet chats' replies while the busy chat keeps sending",
                timeout=30,
            )
            assert not sender.done(), "the busy sender stopped before the quiet chats were answered"
            # the busy chat is still being served afterwards: the quiet ones did not win because it went idle
            quiet_started = max(run.started_at for run in h.store.recent_runs(1000) if run.group_folder != "busy")
            await h.wait_for(
                lambda: any(run.started_at > quiet_started for run in busy_runs()), "a busy run after the quiet ones"
            )
        finally:
            stop_sending.set()
            await sender
        await h.settled()

        runs = sorted(h.store.recent_runs(1000), key=lambda run: run.started_at)
        assert [run.status for run in runs] == ["ok"] * len(runs)
        assert overlapping_runs(runs) == []
        assert most_at_once(runs) == 1
        for message, folder in ((q1, "quiet1"), (q2, "quiet2")):
            (quiet_run,) = [run for run in runs if run.group_folder == folder]
            cut_in = [run for run in runs if run.group_folder == "busy" and message.received_at < run.started_at]
            cut_in = [run for run in cut_in if run.started_at < quiet_run.started_at]
            assert len(cut_in) <= 2, f"{len(cut_in)} busy runs started between {folder}'s message and its run"
        assert h.replies("web:busy")[-1] == f"echo: {busy_sent[-1]}"
        assert_all_consumed(h, "web:busy", len(busy_sent))
        assert_all_consumed(h, "web:quiet1", 1)
        assert_all_consumed(h, "web:quiet2", 1)


async def test_two_chats_of_one_folder_take_turns(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("shared", env={"ECHO_DELAY": 0.2})]) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:1", target="shared")
        h.store.add_route(seq=1, match="chat_jid=telegram:2", target="shared")
        with QueueSampler(h) as queue:
            for i in range(3):
                await h.send("telegram:1", f"a{i}")
                await h.send("telegram:2", f"b{i}")
                await asyncio.sleep(0.05)
            await h.wait_for(
                lambda: len(h.replies("telegram:1")) >= 3 and len(h.replies("telegram:2")) >= 3, "both chats' replies"
            )
            await h.settled()

        assert h.replies("telegram:1") == ["echo: a0", "echo: a1", "echo: a2"]
        assert h.replies("telegram:2") == ["echo: b0", "echo: b1", "echo: b2"]
        assert len(h.replies()) == 6
        assert_all_consumed(h, "telegram:1", 3)
        assert_all_consumed(h, "telegram:2", 3)

        runs = h.store.recent_runs(1000)
        assert [run.status for run in runs] == ["ok"] * len(runs)
        assert {run.chat_jid for run in runs} == {"telegram:1", "telegram:2"}
        assert {run.group_folder for run in runs} == {"shared"}
        # both chats had work at once, yet the folder ran one agent at a time
        assert queue.max_running == 1
        assert overlapping_runs(runs) == []
        assert most_at_once(runs) == 1
