"""`/stop` that arrives while a restarted gated re-attaches a run left in flight stops that run.

A reclaimed run is resumed before anything else of its lane, and its re-attach (listing and attaching the container,
replaying its output) takes a while. A `/stop` sent then was remembered and never acted on (the check was only on the
path of a fresh start): the chat was told "Container stopped." while the agent ran on and answered anyway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kanmon.container import RunSpec
from kanmon.container.handle import RunHandle
from kanmon.container.process import ProcessRuntime
from tests.gateway_harness import process_group, running_gateway


class SlowToAttach:
    """The process runtime, whose attach waits until the test lets it go (a busy engine, a long log to replay)."""

    def __init__(self, runtime: ProcessRuntime) -> None:
        self.runtime = runtime
        self.go, self.attaching = asyncio.Event(), asyncio.Event()

    async def available(self) -> bool:
        return True

    async def start(self, spec: RunSpec) -> RunHandle:
        return await self.runtime.start(spec)

    async def list_runs(self, instance: str) -> list[object]:
        return list(await self.runtime.list_runs(instance))

    async def attach(self, instance: str, run_id: str) -> RunHandle:
        self.attaching.set()
        await self.go.wait()
        return await self.runtime.attach(instance, run_id)


async def test_a_stop_during_the_reattach_of_a_reclaimed_run_stops_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    group = process_group("corp", {"ECHO_DELAY": 8.0})
    async with running_gateway(data, [group], drain_timeout=0.2) as h:
        await h.send("web:corp", "slow question")
        await h.wait_for(lambda: any(run.status == "running" for run in h.store.recent_runs()), "the run to start")
    # detached: the agent still works on it, nobody is reading
    slow = SlowToAttach(ProcessRuntime(data / "runs", data_dir=data))
    async with running_gateway(data, [group], runtimes={"process": slow}) as again:
        await asyncio.wait_for(slow.attaching.wait(), 30)
        await again.send("web:corp", "/stop")
        await again.wait_for(lambda: [m.content for m in again.outbound("web:corp")] == ["Container stopped."], "it")
        slow.go.set()
        await again.settled()
        [run] = again.store.recent_runs()
        assert run.status == "stopped"
        assert again.replies("web:corp") == []  # stopped before it could answer
