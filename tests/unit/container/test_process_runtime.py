"""ProcessRuntime against real subprocesses running the reference echo agent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from kanmon.container import echo_agent
from kanmon.container.base import Mount, RunSpec
from kanmon.container.errors import InvalidRunSpec, RunNotFound, UnsafeMount
from kanmon.container.events import Exited, ExitReason, Heartbeat, Output, RunEvent
from kanmon.container.process import ProcessRuntime
from tests.runtime_events import PROMPT, collect, exited, outputs, run_spec

REPO = str(Path(__file__).resolve().parents[3])
AGENT = (sys.executable, "-I", echo_agent.__file__)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def runtime(tmp_path: Path, data_dir: Path) -> ProcessRuntime:
    return ProcessRuntime(tmp_path / "runs", data_dir=data_dir, poll_interval=0.01, output_limit=1024 * 1024)


def make_spec(data_dir: Path, run_id: str = "run-1", *, instance: str = "test", **overrides: Any) -> RunSpec:
    return run_spec(data_dir, run_id, instance, **{"command": AGENT, "stop_grace": 0.5, **overrides})


def wait_for_file(path: Path, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


async def test_the_agent_reads_its_input_and_echoes_each_message(runtime: ProcessRuntime, data_dir: Path) -> None:
    events = await collect(await runtime.start(make_spec(data_dir)))
    assert isinstance(events[0], Heartbeat)
    assert [o.text for o in outputs(events)] == ["echo: hi & bye", "echo: second"]
    output = outputs(events)[-1]
    assert output.new_session_id
    assert exited(events) == Exited(code=0, reason=ExitReason.EXIT, outputs=2, delivered=2)


async def test_the_agent_keeps_the_session_it_was_given(runtime: ProcessRuntime, data_dir: Path) -> None:
    spec = make_spec(data_dir, payload={"prompt": PROMPT, "sessionId": "sess-42"})
    assert {o.new_session_id for o in outputs(await collect(await runtime.start(spec)))} == {"sess-42"}


async def test_outputs_arrive_in_order_while_the_agent_still_runs(runtime: ProcessRuntime, data_dir: Path) -> None:
    handle = await runtime.start(make_spec(data_dir, env={"ECHO_DELAY": 0.3}))
    seen: list[RunEvent] = []
    async for event in handle:
        if isinstance(event, Output) and event.index == 0:
            [info] = await runtime.list_runs("test")
            assert info.running, "the first output must arrive before the agent exits"
        seen.append(event)
    assert [o.text for o in outputs(seen)] == ["echo: hi & bye", "echo: second"]


@pytest.mark.parametrize(
    ("env", "delivered"),
    [
        pytest.param({"ECHO_EXIT": 3}, 2, id="with-output"),
        pytest.param({"ECHO_EXIT": 3, "ECHO_SILENT": 1}, 0, id="silent"),
    ],
)
async def test_a_non_zero_exit_is_reported_with_whether_there_was_output(
    runtime: ProcessRuntime, data_dir: Path, env: dict[str, Any], delivered: int
) -> None:
    end = exited(await collect(await runtime.start(make_spec(data_dir, env=env))))
    assert (end.code, end.reason, end.delivered) == (3, ExitReason.EXIT, delivered)
    assert end.had_output is bool(delivered)
    assert not end.ok


async def test_heartbeats_keep_a_run_alive_past_its_idle_timeout(runtime: ProcessRuntime, data_dir: Path) -> None:
    env = {"ECHO_HEARTBEATS": 8, "ECHO_HEARTBEAT_INTERVAL": 0.1}
    spec = make_spec(data_dir, env=env, idle_timeout=0.4, timeout=31)
    events = await collect(await runtime.start(spec))
    assert exited(events).reason is ExitReason.EXIT
    assert sum(isinstance(e, Heartbeat) for e in events) == 9


async def test_a_silent_run_is_stopped_by_its_idle_timeout(runtime: ProcessRuntime, data_dir: Path) -> None:
    spec = make_spec(data_dir, env={"ECHO_SILENT": 1, "ECHO_HANG": 60}, idle_timeout=0.3, timeout=31)
    end = exited(await collect(await runtime.start(spec)))
    assert end.reason is ExitReason.IDLE_TIMEOUT
    assert end.code == 128 + signal.SIGTERM
    assert not end.had_output


async def test_the_hard_timeout_ends_a_run_that_keeps_sending_heartbeats(
    runtime: ProcessRuntime, data_dir: Path
) -> None:
    env = {"ECHO_HEARTBEATS": 1000, "ECHO_HEARTBEAT_INTERVAL": 0.05}
    spec = make_spec(data_dir, env=env, idle_timeout=None, timeout=0.5)
    end = exited(await collect(await runtime.start(spec)))
    assert end.reason is ExitReason.HARD_TIMEOUT


async def test_stop_kills_an_agent_that_ignores_sigterm_after_the_grace(
    runtime: ProcessRuntime, data_dir: Path
) -> None:
    handle = await runtime.start(make_spec(data_dir, env={"ECHO_IGNORE_TERM": 1, "ECHO_HANG": 60}))
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Output):
            await handle.stop(grace=0.2)
    end = exited(events)
    assert (end.reason, end.code, end.delivered) == (ExitReason.STOPPED, 128 + signal.SIGKILL, 2)


async def test_kill_ends_a_run_at_once(runtime: ProcessRuntime, data_dir: Path) -> None:
    handle = await runtime.start(make_spec(data_dir, env={"ECHO_SILENT": 1, "ECHO_HANG": 60}))
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Heartbeat):
            await handle.kill()
    assert (exited(events).reason, exited(events).code) == (ExitReason.KILLED, 128 + signal.SIGKILL)


async def test_a_run_writing_past_the_output_cap_is_killed(runtime: ProcessRuntime, data_dir: Path) -> None:
    spec = make_spec(data_dir, env={"ECHO_FLOOD": 2 * 1024 * 1024, "ECHO_HANG": 60})
    end = exited(await collect(await runtime.start(spec)))
    assert end.reason is ExitReason.OUTPUT_LIMIT
    assert end.outputs == 0


async def test_stderr_and_stray_stdout_are_kept_for_the_run_log(runtime: ProcessRuntime, data_dir: Path) -> None:
    end = exited(await collect(await runtime.start(make_spec(data_dir, env={"ECHO_STDERR": "warming up"}))))
    assert end.stderr == "warming up\n"


async def test_the_run_directory_is_removed_once_exited_is_consumed(
    runtime: ProcessRuntime, data_dir: Path, tmp_path: Path
) -> None:
    await collect(await runtime.start(make_spec(data_dir)))
    assert list((tmp_path / "runs" / "test").iterdir()) == []
    assert await runtime.list_runs("test") == []


async def test_the_agent_runs_in_its_group_folder_which_is_created(runtime: ProcessRuntime, data_dir: Path) -> None:
    await collect(await runtime.start(make_spec(data_dir, env={"ECHO_TOUCH": "note.txt"})))
    assert (data_dir / "groups" / "corp" / "eng" / "note.txt").exists()


async def test_list_runs_returns_only_this_instance_runs(runtime: ProcessRuntime, data_dir: Path) -> None:
    hang = {"ECHO_HANG": 60}
    mine = await runtime.start(make_spec(data_dir, "mine", env=hang))
    theirs = await runtime.start(make_spec(data_dir, "theirs", instance="other", env=hang))
    try:
        assert [run.run_id for run in await runtime.list_runs("test")] == ["mine"]
        [other] = await runtime.list_runs("other")
        assert other.running
        with pytest.raises(RunNotFound):
            await runtime.attach("test", "theirs")
    finally:
        await mine.kill()
        await theirs.kill()
        await mine.close()
        await theirs.close()


async def test_attach_replays_a_finished_run_from_the_start(tmp_path: Path, data_dir: Path) -> None:
    first = ProcessRuntime(tmp_path / "runs", data_dir=data_dir, poll_interval=0.01)
    await first.start(make_spec(data_dir, env={}))  # nobody reads it: the daemon "died"
    await asyncio.to_thread(wait_for_file, tmp_path / "runs" / "test" / "run-1" / "exit")
    restarted = ProcessRuntime(tmp_path / "runs", data_dir=data_dir, poll_interval=0.01)
    [info] = await restarted.list_runs("test")
    assert (info.running, info.exit_code) == (False, 0)
    events = await collect(await restarted.attach("test", "run-1"))
    assert [o.index for o in outputs(events)] == [0, 1]
    assert exited(events).reason is ExitReason.EXIT


GATED = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from kanmon.container.base import RunSpec
    from kanmon.container.process import ProcessRuntime

    async def main():
        runtime = ProcessRuntime(Path(sys.argv[1]), poll_interval=0.01)
        spec = RunSpec(run_id="orphan", instance="test", folder="corp", group_dir=Path(sys.argv[2]),
                       command=tuple(json.loads(sys.argv[3])), env={"ECHO_DELAY": "0.5"},
                       stdin=json.dumps({"prompt": "<message>a</message><message>b</message>"}).encode())
        await runtime.start(spec)
        await asyncio.sleep(0.2)  # let the input reach the agent
        print("started", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_a_run_survives_the_daemon_being_killed_and_is_reclaimed(tmp_path: Path) -> None:
    # Given a daemon that started a run and was then killed with SIGKILL
    env = {**os.environ, "PYTHONPATH": REPO}
    args = [str(tmp_path / "runs"), str(tmp_path / "group"), json.dumps(AGENT)]
    daemon = await asyncio.create_subprocess_exec(sys.executable, "-c", GATED, *args, stdout=PIPE, env=env)
    assert daemon.stdout is not None
    assert await daemon.stdout.readline() == b"started\n"
    daemon.send_signal(signal.SIGKILL)
    await daemon.wait()
    # When a new daemon looks for its runs
    runtime = ProcessRuntime(tmp_path / "runs", poll_interval=0.01)
    [info] = await runtime.list_runs("test")
    assert info.running
    # Then it replays every output and the real exit status
    events = await collect(await runtime.attach("test", "orphan"))
    assert [o.text for o in outputs(events)] == ["echo: a", "echo: b"]
    assert exited(events).code == 0


async def test_the_input_never_lands_in_argv_or_files(runtime: ProcessRuntime, data_dir: Path, tmp_path: Path) -> None:
    payload = {"prompt": PROMPT, "secrets": {"API_KEY": "s3cr3t-value"}}
    handle = await runtime.start(make_spec(data_dir, payload=payload, env={"ECHO_HANG": 60}))
    try:
        run_dir = tmp_path / "runs" / "test" / "run-1"
        state = json.loads((run_dir / "state.json").read_text())
        cmdline = await asyncio.to_thread(Path(f"/proc/{state['pid']}/cmdline").read_bytes)
        assert b"s3cr3t" not in cmdline
        assert all(b"s3cr3t" not in path.read_bytes() for path in run_dir.iterdir() if path.is_file())
    finally:
        await handle.kill()
        await collect(handle)


async def test_a_group_folder_that_is_a_symlink_out_of_the_data_dir_is_refused(
    runtime: ProcessRuntime, data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (data_dir / "groups" / "corp").mkdir(parents=True)
    (data_dir / "groups" / "corp" / "eng").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeMount, match="outside the data dir"):
        await runtime.start(make_spec(data_dir))


async def test_a_symlink_the_agent_made_inside_its_folder_does_not_disable_the_group(
    runtime: ProcessRuntime, data_dir: Path
) -> None:
    """A newcomer's report: one ``ln -s /etc/passwd`` (or a ``python -m venv``) by the agent refused every later run
    of its group, until an operator found and removed the link. Only the folder's own path must be real."""
    group = data_dir / "groups" / "corp" / "eng"
    (group / "venv" / "bin").mkdir(parents=True)
    (group / "venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    (group / "passwd").symlink_to("/etc/passwd")
    end = exited(await collect(await runtime.start(make_spec(data_dir))))
    assert end.code == 0, end.stderr


async def test_a_spec_with_mounts_is_refused_since_a_process_sees_the_host_anyway(
    runtime: ProcessRuntime, data_dir: Path, tmp_path: Path
) -> None:
    mount = Mount(source=tmp_path, target="/data")
    with pytest.raises(InvalidRunSpec, match="the process runtime has no mounts"):
        await runtime.start(make_spec(data_dir, mounts=(mount,)))
    assert not (data_dir / "runs").exists() or not any((data_dir / "runs").rglob("state.json"))


async def test_starting_the_same_run_twice_is_refused(runtime: ProcessRuntime, data_dir: Path) -> None:
    handle = await runtime.start(make_spec(data_dir))
    with pytest.raises(InvalidRunSpec, match="already exists"):
        await runtime.start(make_spec(data_dir))
    await collect(handle)


async def test_attach_to_an_unknown_run_raises_run_not_found(runtime: ProcessRuntime) -> None:
    with pytest.raises(RunNotFound):
        await runtime.attach("test", "nope")


async def test_attaching_and_letting_go_again_and_again_leaks_no_file(runtime: ProcessRuntime, data_dir: Path) -> None:
    """A daemon that detaches from a live run (a lost engine, a stop) and re-attaches later opens the run's output
    files each time; the handle it let go must have closed them."""
    handle = await runtime.start(make_spec(data_dir, env={"ECHO_HANG": 60}))

    async def first_output(run: Any) -> None:
        async for event in run:
            if isinstance(event, Output):
                return  # let go of a live run: the handle is abandoned, not released

    try:
        await first_output(handle)
        before = len(list(Path("/proc/self/fd").iterdir()))
        let_go = [await runtime.attach("test", "run-1") for _ in range(20)]  # kept: no garbage collector helps
        for run in let_go:
            await first_output(run)
        assert len(list(Path("/proc/self/fd").iterdir())) <= before + 2
    finally:
        await handle.kill()
        await handle.close()
