"""When a runtime answers again after an outage, gated removes what the outage left behind, and nothing else.

Docker's start creates the labelled container first and then attaches, starts and inspects it; the run's handle
exists only once all that is done. Before, the sweep of leftovers that the first successful start set off removed
the container of another lane still in the middle of its start: that start failed ("No such container"), used an
attempt and evicted the session (an outside review). Runs whose start is in flight are now live to the sweep.

The runtime here has Docker's shape (the run exists before its start returns) over the in-process runtime, so the
test controls when each start finishes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kanmon.container import ContainerError, InProcessRuntime, RunSpec
from kanmon.container.base import RunInfo
from kanmon.container.handle import RunHandle
from kanmon.container.inprocess import AgentCall
from kanmon.store import Group
from tests.gateway_harness import running_gateway


class CreatedFirst:
    """An in-process runtime whose start registers the run (as Docker creates the container), then waits for
    ``held`` folders' gates (attach, start, inspect) before it hands the run over."""

    def __init__(self, runtime: InProcessRuntime, held: str) -> None:
        self.runtime, self.held = runtime, held
        self.go, self.waiting = asyncio.Event(), asyncio.Event()

    async def available(self) -> bool:
        return True

    async def start(self, spec: RunSpec) -> RunHandle:
        handle = await self.runtime.start(spec)  # the run exists from here on, and list_runs shows it
        if spec.folder == self.held:
            self.waiting.set()
            await self.go.wait()
        if spec.run_id not in {info.run_id for info in await self.runtime.list_runs(spec.instance)}:
            raise ContainerError(f"No such container: {spec.run_id}")
        return handle

    async def list_runs(self, instance: str) -> list[RunInfo]:
        return await self.runtime.list_runs(instance)

    async def attach(self, instance: str, run_id: str) -> RunHandle:
        return await self.runtime.attach(instance, run_id)


async def answers(call: AgentCall) -> int:
    call.emit({"status": "ok", "result": "answer"})
    return 0


async def test_the_sweep_after_an_outage_spares_a_run_whose_start_is_in_flight(tmp_path: Path) -> None:
    runtime = CreatedFirst(InProcessRuntime(answers), held="bee")
    groups = [Group(folder=folder, container_config={"runtime": "docker-like"}) for folder in ("ay", "bee")]
    async with running_gateway(tmp_path / "data", groups, runtimes={"docker-like": runtime}) as h:
        h.gateway.runner.reclaimer.mark_unavailable("docker-like", "the engine restarted")
        await h.send("web:bee", "first")
        await asyncio.wait_for(runtime.waiting.wait(), 30)  # bee's run exists; its start is still in flight
        await h.send("web:ay", "second")  # its start succeeds: the runtime answers again, the sweep runs
        await h.wait_for(lambda: h.replies("web:ay") == ["answer"], "ay's answer")
        await asyncio.sleep(0.2)  # what the sweep would have done, it has done
        runtime.go.set()
        await h.settled()
        assert h.replies("web:bee") == ["answer"]
        assert sorted(run.status for run in h.store.recent_runs()) == ["ok", "ok"]  # no failed start, no retry
