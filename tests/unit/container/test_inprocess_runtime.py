"""InProcessRuntime: agent callables run as tasks, seen through the same RunHandle as the real runtimes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kanmon.container import AgentCall, InProcessRuntime, Runtime
from kanmon.container.base import RunSpec
from kanmon.container.errors import InvalidRunSpec, RunNotFound
from kanmon.container.events import Exited, ExitReason, Heartbeat, Output, RunEvent
from kanmon.container.inprocess import echo_agent, null_agent
from tests.runtime_events import PROMPT, collect, exited, outputs, run_spec


def make_spec(run_id: str = "run-1", *, instance: str = "test", **overrides: Any) -> RunSpec:
    # the group folder is never created: the in-process runtime does not touch the disk
    fields: dict[str, Any] = {"command": ("inprocess",), "stop_grace": 0.2, **overrides}
    return run_spec(Path("/nonexistent"), run_id, instance, **fields)


async def hang(call: AgentCall) -> int:
    call.emit({"heartbeat": True})
    await asyncio.sleep(60)
    return 0


async def test_it_is_a_runtime() -> None:
    runtime: Runtime = InProcessRuntime(null_agent)
    assert await runtime.available()


async def test_echo_answers_each_message_in_order() -> None:
    events = await collect(await InProcessRuntime(echo_agent).start(make_spec()))
    assert isinstance(events[0], Heartbeat)
    assert [(o.index, o.text) for o in outputs(events)] == [(0, "echo: hi & bye"), (1, "echo: second")]
    [session] = {o.new_session_id for o in outputs(events)}
    assert session
    assert exited(events) == Exited(code=0, reason=ExitReason.EXIT, outputs=2, delivered=2)


async def test_echo_keeps_the_session_it_was_given() -> None:
    spec = make_spec(payload={"prompt": PROMPT, "sessionId": "sess-42"})
    events = await collect(await InProcessRuntime(echo_agent).start(spec))
    assert {o.new_session_id for o in outputs(events)} == {"sess-42"}


async def test_the_agent_sees_its_spec_and_parsed_request() -> None:
    seen: list[AgentCall] = []

    async def agent(call: AgentCall) -> int:
        seen.append(call)
        return 0

    await collect(await InProcessRuntime(agent).start(make_spec(env={"A": 1}, payload={"prompt": "x", "n": 2})))
    assert seen[0].request == {"prompt": "x", "n": 2}
    assert seen[0].spec.env == {"A": "1"}


@pytest.mark.parametrize("stdin", [b"", b"not json", json.dumps([1, 2]).encode()])
async def test_an_input_that_is_not_a_json_object_reads_as_empty(stdin: bytes) -> None:
    requests: list[dict[str, Any]] = []

    async def agent(call: AgentCall) -> int:
        requests.append(call.request)
        return 0

    await collect(await InProcessRuntime(agent).start(make_spec(stdin=stdin)))
    assert requests == [{}]


async def test_the_exit_code_and_stderr_propagate() -> None:
    async def agent(call: AgentCall) -> int:
        call.emit({"status": "error", "result": None, "error": "nope"})
        call.write("warming up\n", stderr=True)
        call.write(b"stray text\n")
        return 3

    end = exited(await collect(await InProcessRuntime(agent).start(make_spec())))
    assert (end.code, end.reason, end.outputs, end.had_output) == (3, ExitReason.EXIT, 1, False)
    assert (end.stderr, end.stray) == ("warming up\n", "stray text\n")


async def test_null_agent_says_nothing_and_exits_zero() -> None:
    events = await collect(await InProcessRuntime(null_agent).start(make_spec()))
    assert events == [Exited(code=0, reason=ExitReason.EXIT)]


async def test_an_agent_that_raises_exits_with_code_1_after_its_output(caplog: pytest.LogCaptureFixture) -> None:
    async def agent(call: AgentCall) -> int:
        call.emit({"status": "ok", "result": "partial"})
        raise RuntimeError("boom")

    runtime = InProcessRuntime(agent)
    events = await collect(await runtime.start(make_spec()))
    assert [o.text for o in outputs(events)] == ["partial"]
    assert (exited(events).code, exited(events).reason) == (1, ExitReason.EXIT)
    assert "boom" in caplog.text
    assert runtime.running == 0


async def test_stop_cancels_an_agent_that_ignores_stopping_after_the_grace() -> None:
    handle = await InProcessRuntime(hang).start(make_spec())
    events: list[RunEvent] = []
    began = time.monotonic()
    async for event in handle:
        events.append(event)
        if isinstance(event, Heartbeat):
            await handle.stop(grace=0.1)
    assert (exited(events).reason, exited(events).code) == (ExitReason.STOPPED, 143)
    assert time.monotonic() - began < 2


async def test_an_agent_may_end_early_when_asked_to_stop() -> None:
    async def polite(call: AgentCall) -> int:
        call.emit({"heartbeat": True})
        await call.stopping.wait()
        call.emit({"status": "ok", "result": "bye"})
        return 0

    handle = await InProcessRuntime(polite).start(make_spec(stop_grace=30))
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Heartbeat):
            await handle.stop()
    assert [o.text for o in outputs(events)] == ["bye"]
    assert (exited(events).reason, exited(events).code) == (ExitReason.STOPPED, 0)


async def test_kill_cancels_at_once() -> None:
    handle = await InProcessRuntime(hang).start(make_spec(stop_grace=30))
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Heartbeat):
            await handle.kill()
    assert (exited(events).reason, exited(events).code) == (ExitReason.KILLED, 137)


async def test_heartbeats_alone_end_in_an_idle_timeout_without_output() -> None:
    spec = make_spec(idle_timeout=0.2, timeout=31, stop_grace=0.1)
    began = time.monotonic()
    events = await collect(await InProcessRuntime(hang).start(spec))
    end = exited(events)
    assert (end.reason, end.code, end.had_output) == (ExitReason.IDLE_TIMEOUT, 143, False)
    assert sum(isinstance(e, Heartbeat) for e in events) == 1
    assert time.monotonic() - began < 2


async def test_a_stop_after_the_idle_timeout_decided_leaves_the_run_an_idle_timeout() -> None:
    # the first reason decided wins: a user's /stop arriving while a timed-out run is being ended must not turn it
    # into a stopped run (never retried; a timeout without output is retried with backoff, SPEC §9)
    async def stubborn(call: AgentCall) -> int:
        call.emit({"heartbeat": True})
        await call.stopping.wait()
        await asyncio.sleep(0.3)  # still ending when /stop comes
        return 143

    handle = await InProcessRuntime(stubborn).start(make_spec(idle_timeout=0.2, timeout=31, stop_grace=5))

    async def stop_once_decided() -> None:
        while handle.reason is None:  # noqa: ASYNC110 (the handle offers no event for its decision)
            await asyncio.sleep(0.01)
        await handle.stop()

    stopping = asyncio.create_task(stop_once_decided())
    events = await asyncio.wait_for(collect(handle), 10)
    await asyncio.wait_for(stopping, 10)
    assert exited(events).reason is ExitReason.IDLE_TIMEOUT


async def test_an_agent_writing_past_the_output_cap_is_killed() -> None:
    async def flood(call: AgentCall) -> int:
        call.write(b"---ARIZUKO_OUTPUT_START---\n")
        while True:
            call.write(b"x" * 1024 + b"\n")
            await asyncio.sleep(0)

    end = exited(await collect(await InProcessRuntime(flood, output_limit=64 * 1024).start(make_spec())))
    assert (end.reason, end.code, end.outputs) == (ExitReason.OUTPUT_LIMIT, 137, 0)


async def test_list_runs_shows_only_the_instance_runs_until_released() -> None:
    runtime = InProcessRuntime(hang)
    mine = await runtime.start(make_spec("mine"))
    theirs = await runtime.start(make_spec("theirs", instance="other"))
    [info] = await runtime.list_runs("test")
    assert (info.run_id, info.instance, info.folder, info.running) == ("mine", "test", "corp/eng", True)
    assert info.name == "kanmon-test-corp-eng-mine"
    assert info.labels["kanmon.run"] == "mine"
    assert [run.run_id for run in await runtime.list_runs("other")] == ["theirs"]
    with pytest.raises(RunNotFound):
        await runtime.attach("test", "theirs")
    await mine.kill()
    await collect(mine)
    await theirs.close()
    assert await runtime.list_runs("test") == []
    assert await runtime.list_runs("other") == []


async def test_starting_the_same_run_twice_is_refused() -> None:
    runtime = InProcessRuntime(echo_agent)
    handle = await runtime.start(make_spec())
    with pytest.raises(InvalidRunSpec, match="already exists"):
        await runtime.start(make_spec())
    await collect(handle)


async def test_attach_replays_a_finished_run_from_the_start() -> None:
    runtime = InProcessRuntime(echo_agent)
    await runtime.start(make_spec())  # nobody reads it: the daemon "restarted"
    await asyncio.sleep(0.01)
    [info] = await runtime.list_runs("test")
    assert (info.running, info.exit_code) == (False, 0)
    events = await collect(await runtime.attach("test", "run-1"))
    assert [o.index for o in outputs(events)] == [0, 1]
    assert exited(events).reason is ExitReason.EXIT
    with pytest.raises(RunNotFound):
        await runtime.attach("test", "run-1")


async def test_attach_to_a_running_run_replays_then_follows() -> None:
    go = asyncio.Event()

    async def agent(call: AgentCall) -> int:
        call.emit({"status": "ok", "result": "first"})
        await go.wait()
        call.emit({"status": "ok", "result": "second"})
        return 0

    runtime = InProcessRuntime(agent)
    await runtime.start(make_spec())
    await asyncio.sleep(0.01)
    handle = await runtime.attach("test", "run-1")
    texts: list[str] = []
    async for event in handle:
        if isinstance(event, Output):
            texts.append(event.text)
            go.set()
    assert texts == ["first", "second"]


async def test_the_counters_follow_starts_and_exits() -> None:
    release = asyncio.Event()

    async def wait(call: AgentCall) -> int:
        await release.wait()
        return 0

    runtime = InProcessRuntime(wait)
    handles = [await runtime.start(make_spec(f"r{i}")) for i in range(3)]
    await asyncio.sleep(0)
    assert (runtime.started, runtime.running, runtime.peak_running) == (3, 3, 3)
    release.set()
    for handle in handles:
        await collect(handle)
    assert (runtime.started, runtime.running, runtime.peak_running) == (3, 0, 3)
    await collect(await runtime.start(make_spec("r3")))
    assert (runtime.started, runtime.running, runtime.peak_running) == (4, 0, 3)


async def test_a_thousand_null_runs_go_through() -> None:
    runtime = InProcessRuntime(null_agent)
    handles = [await runtime.start(make_spec(f"r{i}")) for i in range(1000)]
    ends = await asyncio.gather(*(collect(handle) for handle in handles))
    assert all(exited(events).ok for events in ends)
    assert (runtime.started, runtime.running) == (1000, 0)
    assert await runtime.list_runs("test") == []
