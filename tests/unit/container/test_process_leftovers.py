"""Nothing a process-runtime run started survives it: not even a child that double-forked into its own session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import time
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.container.base import RunSpec
from kanmon.container.events import ExitReason, Output, RunEvent
from kanmon.container.process import ProcessRuntime
from kanmon.container.process_wrapper import process_start_ticks
from tests.runtime_events import collect, exited, run_spec

REPO = str(Path(__file__).resolve().parents[3])

# An agent that leaves a grandchild behind the way a daemonizing tool does (fork, setsid, fork again), waits for
# the middle process, answers, then lingers for $LINGER seconds and exits with $CODE. The grandchild writes its
# pid to $PIDFILE; with $STUBBORN it ignores SIGTERM.
AGENT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    json.load(sys.stdin)
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            if os.environ.get("STUBBORN"):
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(os.environ["PIDFILE"] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(os.environ["PIDFILE"] + ".tmp", os.environ["PIDFILE"])
            time.sleep(300)
        os._exit(0)
    os.waitpid(middle, 0)
    while not os.path.exists(os.environ["PIDFILE"]):
        time.sleep(0.01)
    block = {"status": "ok", "result": "left something behind"}
    print("---ARIZUKO_OUTPUT_START---", json.dumps(block), "---ARIZUKO_OUTPUT_END---", sep="\\n", flush=True)
    time.sleep(float(os.environ.get("LINGER", "0")))
    sys.exit(int(os.environ.get("CODE", "0")))
    """
)


class Grandchild:
    """The pid the agent left behind, and whether that very process (not a reused pid) still runs."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        self.pid: int | None = None
        self.start: int | None = None

    def found(self) -> bool:
        if self.pid is None and self.pidfile.exists():
            self.pid = int(self.pidfile.read_text())
            self.start = process_start_ticks(self.pid)
        return self.pid is not None

    def alive(self) -> bool:
        assert self.found(), "the agent never started its grandchild"
        assert self.pid is not None
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        fields = stat.rpartition(")")[2].split()
        return fields[0] != "Z" and int(fields[19]) == self.start

    def kill(self) -> None:
        if self.found() and self.alive():
            assert self.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def grandchild(tmp_path: Path) -> Iterator[Grandchild]:
    left = Grandchild(tmp_path / "grandchild.pid")
    yield left
    left.kill()  # a failing test must not leave `sleep`s behind


@pytest.fixture
def runtime(tmp_path: Path) -> ProcessRuntime:
    return ProcessRuntime(tmp_path / "runs", data_dir=tmp_path / "data", poll_interval=0.01)


def agent_env(grandchild: Grandchild, **extra: object) -> dict[str, object]:
    return {"PIDFILE": grandchild.pidfile, "PATH": os.environ["PATH"], **extra}


def spec_for(tmp_path: Path, grandchild: Grandchild, extra: dict[str, object], run_id: str = "run-1") -> RunSpec:
    command = (sys.executable, "-I", "-c", AGENT)
    return run_spec(tmp_path / "data", run_id, "test", command=command, env=agent_env(grandchild, **extra))


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="exit-0"),
        pytest.param({"CODE": 3}, id="exit-error"),
        pytest.param({"STUBBORN": 1}, id="grandchild-ignores-sigterm"),
    ],
)
async def test_a_grandchild_in_its_own_session_ends_with_the_run(
    runtime: ProcessRuntime, tmp_path: Path, grandchild: Grandchild, extra: dict[str, object]
) -> None:
    events = await collect(await runtime.start(spec_for(tmp_path, grandchild, extra)))
    assert exited(events).reason is ExitReason.EXIT
    assert exited(events).code == extra.get("CODE", 0)
    assert not grandchild.alive()


@pytest.mark.parametrize("how", ["stop", "kill"])
@pytest.mark.parametrize("stubborn", [False, True], ids=["grandchild-obeys", "grandchild-ignores-sigterm"])
async def test_a_grandchild_ends_when_the_run_is_stopped_or_killed(
    runtime: ProcessRuntime, tmp_path: Path, grandchild: Grandchild, how: str, stubborn: bool
) -> None:
    extra: dict[str, object] = {"LINGER": 60, **({"STUBBORN": 1} if stubborn else {})}
    handle = await runtime.start(spec_for(tmp_path, grandchild, extra))
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Output):
            assert grandchild.alive()
            await (handle.stop(grace=0.3) if how == "stop" else handle.kill())
    assert exited(events).reason is (ExitReason.STOPPED if how == "stop" else ExitReason.KILLED)
    assert not grandchild.alive()


CRASHING_GATED = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from kanmon.container.base import RunSpec
    from kanmon.container.process import ProcessRuntime

    async def main():
        runtime = ProcessRuntime(Path(sys.argv[1]), poll_interval=0.01)
        spec = RunSpec(run_id="orphan", instance="test", folder="corp", group_dir=Path(sys.argv[2]),
                       command=(sys.executable, "-I", "-c", sys.argv[3]), env=json.loads(sys.argv[4]),
                       stdin=b"{}")
        await runtime.start(spec)
        print("started", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_a_run_whose_gated_died_still_ends_its_grandchild_when_the_agent_exits(
    tmp_path: Path, grandchild: Grandchild
) -> None:
    # Given a gated that started a run and was then SIGKILLed while the agent still lingers
    env = json.dumps({key: str(value) for key, value in agent_env(grandchild, LINGER=1).items()})
    args = [str(tmp_path / "runs"), str(tmp_path / "group"), AGENT, env]
    gated = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_GATED, *args, stdout=PIPE, env={**os.environ, "PYTHONPATH": REPO}
    )
    assert gated.stdout is not None
    assert await gated.stdout.readline() == b"started\n"
    deadline = time.monotonic() + 10
    while not grandchild.found():
        assert time.monotonic() < deadline, "the agent never started its grandchild"
        await asyncio.sleep(0.01)
    gated.send_signal(signal.SIGKILL)
    await gated.wait()
    assert grandchild.alive()
    # When the agent exits with nobody watching
    exit_file = tmp_path / "runs" / "test" / "orphan" / "exit"
    while not exit_file.exists():
        assert time.monotonic() < deadline + 10, "the run never recorded its exit"
        await asyncio.sleep(0.05)
    # Then its wrapper has ended the grandchild before it recorded the exit
    assert exit_file.read_text() == "0\n"
    assert not grandchild.alive()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_an_agent_whose_wrapper_was_sigkilled_dies_with_it(
    runtime: ProcessRuntime, tmp_path: Path, grandchild: Grandchild
) -> None:
    # The OOM killer, an operator, or the runtime's own kill in the milliseconds before the wrapper names its agent
    # in child.json: nobody would be left to record the agent's exit or to stop it, and it would run on under init.
    handle = await runtime.start(spec_for(tmp_path, grandchild, {"LINGER": 60}))
    run_dir = tmp_path / "runs" / "test" / "run-1"
    async for event in handle:
        if isinstance(event, Output):
            break
    wrapper = json.loads((run_dir / "state.json").read_text())["pid"]
    agent = json.loads((run_dir / "child.json").read_text())
    os.kill(wrapper, signal.SIGKILL)
    deadline = time.monotonic() + 5
    try:
        while process_start_ticks(agent["pid"]) == agent["start"] and not _zombie(agent["pid"]):
            assert time.monotonic() < deadline, "the agent outlived its wrapper"
            await asyncio.sleep(0.02)
    finally:
        if process_start_ticks(agent["pid"]) == agent["start"]:
            os.kill(agent["pid"], signal.SIGKILL)  # a failing run must not leave the agent lingering


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
