"""Bursts become one run per group (issue 13) without a single message waiting for anything.

Three mechanisms, each tested alone: a run takes its batch only once its agent is up (so what arrives while the
container starts joins it), a loop reading a backlog enqueues lanes once it has caught up, and a chat whose messages
keep coming settles briefly (a quiet chat not at all, nor a message that follows a run of its chat).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kanmon.clock import FakeClock
from kanmon.container.process import ProcessRuntime
from kanmon.gateway.settle import Settle
from kanmon.queue import Lane
from kanmon.store import NewMessage
from tests.gateway_harness import RECORD, inputs, process_group, prompt_texts, running_gateway


class SlowStart:
    """A process runtime whose containers take as long to start as the test says (a Docker start is 100–300 ms)."""

    def __init__(self, runtime: ProcessRuntime) -> None:
        self.runtime = runtime
        self.starting = asyncio.Event()
        self.go = asyncio.Event()
        self.starts = 0

    async def start(self, spec: Any) -> Any:
        self.starts += 1
        self.starting.set()
        await self.go.wait()
        return await self.runtime.start(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)


async def test_messages_that_arrive_while_the_agent_starts_join_its_first_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    slow = SlowStart(ProcessRuntime(data / "runs", data_dir=data))
    group = process_group("corp", {"ECHO_RECORD": RECORD, "ECHO_LAST_ONLY": 1})
    async with running_gateway(data, [group], runtimes={"process": slow}) as h:
        await h.send("web:corp", "m0")
        await asyncio.wait_for(slow.starting.wait(), 30)  # the run's container is coming up
        for n in range(1, 5):
            await h.send("web:corp", f"m{n}")
        await h.wait_for(lambda: h.store.poll_cursor() >= h.sent[-1].seq, "the burst to be routed")
        slow.go.set()
        await h.settled()
        assert [prompt_texts(document) for document in inputs(h, "corp")] == [[f"m{n}" for n in range(5)]]
        assert len(h.store.recent_runs()) == 1


async def test_a_rerun_whose_rows_the_run_before_took_starts_no_agent(tmp_path: Path) -> None:
    """Messages that arrive while a run's agent starts ask for the lane once more, but the run takes them: that
    second turn finds nothing and starts no agent (for Docker, a container start of hundreds of milliseconds)."""
    data = tmp_path / "data"
    slow = SlowStart(ProcessRuntime(data / "runs", data_dir=data))
    async with running_gateway(data, [process_group("corp", {"ECHO_RECORD": RECORD})], runtimes={"process": slow}) as h:
        await h.send("web:corp", "m0")
        await asyncio.wait_for(slow.starting.wait(), 30)
        await h.send("web:corp", "m1")
        await h.wait_for(lambda: h.store.poll_cursor() >= h.sent[-1].seq, "m1 to be routed (the lane asked for again)")
        slow.go.set()
        await h.settled()
        assert [prompt_texts(document) for document in inputs(h, "corp")] == [["m0", "m1"]]
        assert slow.starts == 1
        await h.send("web:corp", "m2")  # the lane is not left in a state that starts nothing any more
        await h.settled()
        assert slow.starts == 2 and len(inputs(h, "corp")) == 2


class FolderReads:
    """Counts the reads of one folder's waiting streams (``lane_heads(folder)``): the loop reads all folders at once,
    so a read of one folder is a lane's own look before it starts an agent."""

    def __init__(self, store: Any) -> None:
        self.count = 0
        self._read = store.lane_heads
        store.lane_heads = self

    def __call__(self, folder: str | None = None) -> Any:
        self.count += folder is not None
        return self._read(folder)


async def test_a_first_turn_starts_its_agent_without_looking_for_rows_first(tmp_path: Path) -> None:
    """Only a follow-up turn checks that rows wait before it starts an agent: the check is a read per run, and on
    every turn it split the grouped write transactions apart (bench/throughput.py: 0.45 → 1.2–1.8 per run)."""
    data = tmp_path / "data"
    slow = SlowStart(ProcessRuntime(data / "runs", data_dir=data))
    async with running_gateway(data, [process_group("corp", {"ECHO_RECORD": RECORD})], runtimes={"process": slow}) as h:
        reads = FolderReads(h.store)
        await h.send("web:corp", "m0")
        await asyncio.wait_for(slow.starting.wait(), 30)
        assert reads.count == 0  # a first turn: straight to its agent
        await h.send("web:corp", "m1")  # asks for the lane once more: a follow-up turn
        await h.wait_for(lambda: h.store.poll_cursor() >= h.sent[-1].seq, "m1 to be routed (the lane asked for again)")
        slow.go.set()
        await h.settled()
        assert reads.count == 1 and slow.starts == 1  # the follow-up turn looked, found m1 taken, started nothing


async def test_with_a_session_policy_a_follow_up_turn_decides_from_the_policys_read_alone(tmp_path: Path) -> None:
    """A group with a session policy reads its lane's waiting streams before every run (to find the sessions to
    reset). A follow-up turn with rows waiting starts its agent on that read: no second read of its own."""
    policy: dict[str, Any] = {"session_reset": "idle", "session_idle_expiry": 3600}
    group = process_group("corp", {"ECHO_RECORD": RECORD, "ECHO_DELAY": 0.5}, **policy)
    async with running_gateway(tmp_path / "data", [group]) as h:
        reads = FolderReads(h.store)
        await h.send("web:corp", "m0")
        await h.wait_for(lambda: [run.status for run in h.store.recent_runs()] == ["running"], "m0's run to begin")
        await h.send("web:corp", "m1")  # while m0's run works: the lane runs once more, for m1
        await h.settled()
        assert [prompt_texts(document) for document in inputs(h, "corp")] == [["m0"], ["m1"]]
        assert reads.count == 2  # one per turn, the policy's


async def test_with_a_session_policy_a_turn_reads_the_waiting_rows_once_and_starts_no_agent_for_a_held_chat(
    tmp_path: Path,
) -> None:
    """A group with a session policy reads its lane's waiting streams before every run (to find the sessions to
    reset); the runner decides from that read, with no second one, and a lane offered while its only rows are held
    by the impulse gate (as the expiry watcher offers a lane) starts no agent."""
    data = tmp_path / "data"
    slow = SlowStart(ProcessRuntime(data / "runs", data_dir=data))
    slow.go.set()
    policy: dict[str, Any] = {"session_reset": "idle", "session_idle_expiry": 3600}
    async with running_gateway(data, [process_group("corp", **policy)], runtimes={"process": slow}) as h:
        reads = FolderReads(h.store)
        await h.send("web:corp", "is typing", verb="typing")  # weight zero: the gate holds the chat
        await h.wait_for(lambda: h.gateway.gate.held() == 1, "the typing event to be held")
        h.gateway.queue.enqueue(Lane("corp"))
        await h.wait_for(lambda: not h.gateway.queue.counts().running and not h.gateway.queue.counts().waiting, "idle")
        assert (reads.count, slow.starts, h.store.recent_runs()) == (1, 0, [])
        await h.send("web:corp", "the question")
        await h.settled()
        assert (reads.count, slow.starts) == (2, 1)
        assert h.replies("web:corp") == ["echo: is typing", "echo: the question"]


async def test_a_backlog_is_read_before_its_lanes_run_so_each_group_runs_once(tmp_path: Path) -> None:
    groups = [process_group(f"g{n}", {"ECHO_RECORD": RECORD, "ECHO_LAST_ONLY": 1}) for n in range(3)]
    async with running_gateway(tmp_path / "data", groups, poll_batch=4) as h:
        await h.wait_for(lambda: h.gateway.loop.ticks > 0, "the loop's first tick")
        for n in range(30):  # stored without waking the loop: a backlog of 30 rows, read 4 at a time
            h.store.put_message(NewMessage(chat_jid=f"web:g{n % 3}", content=f"m{n}", sender="u"))
        h.gateway.wake()
        await h.settled()
        for n in range(3):
            [document] = inputs(h, f"g{n}")  # one run per group, with all ten of its messages
            assert len(prompt_texts(document)) == 10


def test_a_quiet_chat_settles_for_nothing_and_a_busy_one_briefly() -> None:
    clock = FakeClock()
    settle = Settle(clock, cap=0.25, quiet=1.0)
    settle.arrived("web:a")
    assert settle.delay("web:a") == 0.0  # its first message: no wait at all
    clock.advance(5.0)
    settle.arrived("web:a")
    assert settle.delay("web:a") == 0.0  # quiet for a while: still none
    clock.advance(0.08)
    settle.arrived("web:a")
    assert settle.delay("web:a") == pytest.approx(0.08)  # messages 80 ms apart: wait about one gap for the next
    clock.advance(0.6)
    settle.arrived("web:a")
    assert settle.delay("web:a") == 0.25  # never longer than the cap


def test_a_run_ending_ends_a_burst_so_the_next_message_waits_for_nothing() -> None:
    clock = FakeClock()
    settle = Settle(clock, cap=0.25, quiet=1.0)
    settle.arrived("web:a")
    clock.advance(0.1)
    settle.arrived("web:a")
    assert settle.delay("web:a") == pytest.approx(0.1)  # a burst
    settle.ended("web:b")
    assert settle.delay("web:a") == pytest.approx(0.1)  # another chat's run ending changes nothing here
    settle.ended("web:a")
    clock.advance(0.1)
    settle.arrived("web:a")
    assert settle.delay("web:a") == 0.0  # what comes after a run of the chat, however quick, is a new turn


async def test_a_quick_conversation_never_settles(tmp_path: Path) -> None:
    """SPEC §15's latency with the wake-up: a message sent as soon as the last run ended (bench/latency.py's
    pattern) is a new turn, not the rest of a burst, and runs at once."""
    async with running_gateway(tmp_path / "data", [process_group("corp")]) as h:
        for n in range(4):
            await h.send("web:corp", f"turn {n}")
            await h.wait_for(lambda n=n: len(h.replies("web:corp")) == n + 1, f"reply {n}")  # type: ignore[misc]
            await h.wait_for(lambda: h.store.poll_cursor() >= h.store.max_seq(), "the loop to read the reply")
            assert h.gateway.loop.settle_delay("web:corp") == 0.0
