"""A finished run's container is removed after its outcome is stored, in the background: the queue's slot goes to the
next run at once instead of waiting for the engine (issue 13's bursts), and a stopping gated waits for the removals.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kanmon.container import InProcessRuntime, RunSpec
from kanmon.container.inprocess import InProcessRunHandle, echo_agent
from kanmon.store import Group, Store
from tests.gateway_harness import running_gateway

GROUP = Group(folder="corp", container_config={"runtime": "slow", "command": ["unused"]})


class SlowToRemove(InProcessRuntime):
    """The in-process runtime, with removals that wait until the test lets them go (a busy engine)."""

    def __init__(self) -> None:
        super().__init__(echo_agent)
        self.go = asyncio.Event()
        self.store: Store | None = None
        #: each removed run, with its status in the store when its removal began
        self.removed: list[tuple[str, str | None]] = []
        self.broken = False  # removals raise an error that is not the runtime's own

    async def start(self, spec: RunSpec) -> InProcessRunHandle:
        handle = await super().start(spec)
        release = handle._release

        async def slow_release() -> None:
            run = self.store.get_run(handle.run_id) if self.store is not None else None
            await self.go.wait()
            if self.broken:
                raise RuntimeError("the engine's client broke")
            await release()
            self.removed.append((handle.run_id, None if run is None else run.status))

        handle._release = slow_release  # type: ignore[method-assign]
        return handle


async def test_the_next_run_takes_the_slot_while_the_last_runs_container_is_still_being_removed(
    tmp_path: Path,
) -> None:
    runtime = SlowToRemove()
    async with running_gateway(tmp_path / "data", [GROUP], runtimes={"slow": runtime}, max_concurrent=1) as h:
        runtime.store = h.store
        await h.send("web:corp", "one")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: one"], "the first reply")
        await h.wait_for(lambda: len(h.gateway.runner.removals) == 1, "the first run to end")
        # one slot in all: the second message runs while the first run's container is still there
        await h.send("web:corp", "two")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: one", "echo: two"], "the second reply")
        assert runtime.removed == []
        assert len(h.gateway.runner.removals) == 2
        runtime.go.set()
        await h.settled()
        # removed only once its outcome was stored (SPEC §9): each was `ok` when its removal began
        assert [status for _, status in runtime.removed] == ["ok", "ok"]
        assert await runtime.list_runs("test") == []


async def test_a_stopping_gateway_waits_for_the_removals_in_flight(tmp_path: Path) -> None:
    runtime = SlowToRemove()
    async with running_gateway(tmp_path / "data", [GROUP], runtimes={"slow": runtime}) as h:
        await h.send("web:corp", "last words")
        await h.wait_for(lambda: len(h.gateway.runner.removals) == 1, "the run to end")
        asyncio.get_running_loop().call_later(0.3, runtime.go.set)
    assert [status for _, status in runtime.removed] == [None]  # removed before the gateway's stop returned
    assert await runtime.list_runs("test") == []


async def test_a_removal_that_fails_unexpectedly_is_logged_and_the_next_runs_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = SlowToRemove()
    runtime.broken = True
    runtime.go.set()
    async with running_gateway(tmp_path / "data", [GROUP], runtimes={"slow": runtime}, max_concurrent=1) as h:
        await h.send("web:corp", "one")
        await h.settled()
        await h.send("web:corp", "two")
        await h.settled()
        assert h.replies("web:corp") == ["echo: one", "echo: two"]
    failed = [r for r in caplog.records if r.levelno == logging.ERROR and "could not remove" in r.getMessage()]
    assert len(failed) == 2, caplog.text
    assert "the engine's client broke" in failed[0].getMessage()
