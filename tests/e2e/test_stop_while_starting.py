"""`/stop` that arrives while the run's container is still being created stops it the moment it exists.

Without this, the chat was told "Container stopped." while the agent ran to the end and answered anyway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kanmon.container import InProcessRuntime, RunSpec
from kanmon.container.handle import RunHandle
from kanmon.container.inprocess import AgentCall
from kanmon.store import Group
from tests.gateway_harness import running_gateway


class SlowToStart:
    """An in-process runtime whose start waits until the test lets it go (a slow image pull, a busy engine)."""

    def __init__(self, runtime: InProcessRuntime) -> None:
        self.runtime = runtime
        self.go = asyncio.Event()
        self.starting = asyncio.Event()

    async def available(self) -> bool:
        return True

    async def start(self, spec: RunSpec) -> RunHandle:
        self.starting.set()
        await self.go.wait()
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
