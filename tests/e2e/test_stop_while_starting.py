"""`/stop` that arrives while the run's container is still being created stops it the moment it exists, and one that
arrives when no run of the lane is starting or running stops nothing later.

Without the first, the chat was told "Container stopped." while the agent ran to the end and answered anyway. Without
the second (an outside review found it), a `/stop` sent while the lane's failed batch was being dead-lettered was
kept for the lane's next run, which was stopped the moment it started: the user's next message was consumed with
no answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from kanmon.container import InProcessRuntime, RunSpec
from kanmon.container.handle import RunHandle
from kanmon.container.inprocess import AgentCall
from kanmon.store import Group, RunEnd, RunEnded, StoreUnavailable
from tests.gateway_harness import running_gateway


class SlowToStart:
    """An in-process runtime whose start waits until the test lets it go (a slow image pull, a busy engine), or
    ``delay`` seconds when one is given (a container's start)."""

    def __init__(self, runtime: InProcessRuntime, delay: float | None = None) -> None:
        self.runtime, self.delay = runtime, delay
        self.go = asyncio.Event()
        self.starting = asyncio.Event()

    async def available(self) -> bool:
        return True

    async def start(self, spec: RunSpec) -> RunHandle:
        self.starting.set()
        await (self.go.wait() if self.delay is None else asyncio.sleep(self.delay))
        return await self.runtime.start(spec)

    async def list_runs(self, instance: str) -> list[object]:
        return []

    async def attach(self, instance: str, run_id: str) -> RunHandle:
        return await self.runtime.attach(instance, run_id)


async def patient_agent(call: AgentCall) -> int:
    """Answers after a while unless stopped first."""
    try:
        await asyncio.wait_for(call.stopping.wait(), 5.0)
        return 143
    except TimeoutError:
        call.emit({"status": "ok", "result": "answered anyway"})
        return 0


async def test_stop_during_the_start_stops_the_run_once_it_exists(tmp_path: Path) -> None:
    slow = SlowToStart(InProcessRuntime(patient_agent))
    group = Group(folder="corp", container_config={"runtime": "slow", "command": ["unused"]})
    async with running_gateway(tmp_path / "data", [group], runtimes={"slow": slow}) as h:
        await h.send("web:corp", "long job")
        await asyncio.wait_for(slow.starting.wait(), 10)
        await h.send("web:corp", "/stop")
        await h.wait_for(lambda: [m.content for m in h.outbound("web:corp")] == ["Container stopped."], "the answer")
        slow.go.set()
        await h.settled()
        [run] = h.store.recent_runs()
        assert run.status == "stopped"
        assert h.replies("web:corp") == []  # the agent was stopped before it could answer


async def fails_on_boom(call: AgentCall) -> int:
    """Fails without output on a batch that says "boom" (retried, then dead-lettered); answers anything else after a
    moment, unless stopped first."""
    if "boom" in str(call.request.get("prompt", "")):
        return 1
    try:
        await asyncio.wait_for(call.stopping.wait(), 0.3)
        return 143
    except TimeoutError:
        call.emit({"status": "ok", "result": "answer"})
        return 0


async def test_a_stop_while_a_batch_is_dead_lettered_does_not_stop_the_lanes_next_run(tmp_path: Path) -> None:
    group = Group(folder="corp", container_config={"runtime": "inproc", "command": ["unused"]})
    runtimes = {"inproc": InProcessRuntime(fails_on_boom)}
    async with running_gateway(tmp_path / "data", [group], runtimes=runtimes) as h:
        finish_runs = h.store.finish_runs
        dead_lettering, stop_taken = threading.Event(), threading.Event()

        def held_dead_letter(ends: Sequence[RunEnd], *, now: object) -> list[RunEnded]:
            """The dead letter's transaction meets a locked store until the user's /stop has been taken."""
            if any(end.run_id is None for end in ends) and not stop_taken.is_set():
                dead_lettering.set()
                raise StoreUnavailable("database is locked")
            return finish_runs(ends, now=now)  # type: ignore[arg-type]

        h.store.finish_runs = held_dead_letter  # type: ignore[method-assign]
        await h.send("web:corp", "boom")
        assert await asyncio.to_thread(dead_lettering.wait, 60)
        await h.send("web:corp", "/stop")  # the user, tired of waiting
        await h.wait_for(lambda: len(h.outbound("web:corp")) == 1, "the /stop's answer")
        stop_taken.set()
        await h.wait_for(lambda: len(h.outbound("web:corp")) == 2, "the apology")
        await h.settled()
        await h.send("web:corp", "hello")
        await h.settled()
        assert h.replies("web:corp") == ["answer"]
        assert h.store.recent_runs()[0].status == "ok"  # the newest run: it answered, nothing stopped it
