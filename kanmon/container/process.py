"""ProcessRuntime: the agent as a local subprocess in its group folder, for machines without Docker and the demo.

Like a container, a run outlives the daemon that started it. Each run gets a directory
``<runs_dir>/<instance>/<run_id>/`` holding:

* ``state.json``: the wrapper's pid and process start time (so a reused pid is not mistaken for it), the start
  time, labels and command;
* ``stdout``, ``stderr``: the agent's output, written straight to files (not pipes, which die with the daemon);
* ``child.json``, ``exit``: written by :mod:`kanmon.container.process_wrapper`, which runs the agent in its own
  process group and records its exit status even when nobody is left to wait for it.

The runtime reads these files from the start and follows them, for a run it started and for one it reclaims.
The input document goes through a pipe and never touches the disk (it may hold secrets).
Resource limits are not enforced by this runtime, and it has no mounts: the agent runs as gated's user and sees
the host's file system as that user does, so a spec with extra mounts is refused (:data:`PROCESS_MOUNTS`) rather
than run as if it were confined to them.

When a run ends (exit, error, timeout, /stop, kill), nothing it started survives it, gated running or not. On
Linux the wrapper is a child subreaper: the kernel guarantees that a descendant orphaned by its parent's death is
re-parented to the nearest living subreaper ancestor, so no ``setsid`` or double fork takes a process out of the
wrapper's tree (a process-group kill would miss them). After the agent exits, the wrapper SIGTERMs what is left,
SIGKILLs it after a short grace, and reaps it until it has no child; only then does it write ``exit``, so the
run's events end after its leftovers. The one hole: a wrapper that is itself SIGKILLed (by the OOM killer, or by
hand) adopts nothing more; its agent dies with it (``PR_SET_PDEATHSIG``), but what the agent started goes to init.
The runtime never sends the wrapper a SIGKILL once the agent has ended; it sends a SIGTERM, which makes the wrapper
kill the leftovers at once.
Elsewhere than Linux there is no subreaper: a stop reaches only the agent's process group, and what escaped it stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kanmon.container import process_wrapper
from kanmon.container.base import RunInfo, RunSpec, folder_slug, timers_from_labels
from kanmon.container.errors import InvalidRunSpec, RunNotFound
from kanmon.container.handle import STDERR, STDOUT, Chunk, RunHandle
from kanmon.container.mounts import prepare_group_dir
from kanmon.container.process_wrapper import CHILD_FILE, EXIT_FILE, process_start_ticks
from kanmon.container.protocol import REASONING_TAGS, reasoning_tag_names

__all__ = ["PROCESS_MOUNTS", "ProcessRunHandle", "ProcessRuntime"]

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
#: Why a process run cannot have mounts (and what to do instead).
PROCESS_MOUNTS = (
    "the process runtime has no mounts (its agent sees the host's files as gated's user does): use the docker "
    "runtime, or tell the agent the host path with --env"
)
_READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class _RunFiles:
    """The files of one run directory."""

    directory: Path

    @property
    def state(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def exit(self) -> Path:
        return self.directory / EXIT_FILE

    def exit_code(self) -> int | None:
        try:
            return int(self.exit.read_text())
        except (OSError, ValueError):
            return None

    def child(self) -> tuple[int, int | None] | None:
        try:
            child = json.loads((self.directory / CHILD_FILE).read_text())
        except (OSError, ValueError):
            return None
        return int(child["pid"]), child.get("start")

    def load_state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state.read_text())
        return state


def _alive(pid: int, start: int | None) -> bool:
    """True when ``pid`` runs and is the process that was started then (not a reused pid)."""
    ticks = process_start_ticks(pid)
    return ticks is not None and (start is None or ticks == start)


class ProcessRuntime:
    """Run agents as local subprocesses, one run directory each under ``runs_dir``."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        data_dir: Path | None = None,
        poll_interval: float = 0.02,
        output_limit: int | None = None,
        reasoning_tags: Sequence[str] = REASONING_TAGS,
    ) -> None:
        self.runs_dir = runs_dir
        self.data_dir = data_dir
        self.poll_interval = poll_interval
        self.output_limit = output_limit
        self.reasoning_tags = reasoning_tag_names(reasoning_tags)  # ValueError now, not at the first run

    async def agent_host(self, network: str) -> str:
        """Loopback: a local process reaches this machine there, whatever the group's network."""
        return "127.0.0.1"

    def close(self) -> None:
        """Nothing to release: each run is a process of its own, with its own files, and keeps running."""

    async def available(self) -> bool:
        """Always true: a local process can always be started."""
        return True

    async def start(self, spec: RunSpec) -> ProcessRunHandle:
        """Start the agent command of ``spec`` in its group folder and feed it the input document."""
        if not spec.command:
            raise InvalidRunSpec(f"run {spec.run_id}: the process runtime needs a command")
        if spec.mounts:
            raise InvalidRunSpec(f"run {spec.run_id}: {PROCESS_MOUNTS}")
        if self.data_dir is not None:
            prepare_group_dir(self.data_dir, spec.group_dir)
        else:
            spec.group_dir.mkdir(parents=True, exist_ok=True)
        files = _RunFiles(self.runs_dir / spec.instance / spec.run_id)
        argv = self._argv(spec, files.directory)
        try:
            files.directory.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            raise InvalidRunSpec(f"run {spec.run_id} of instance {spec.instance} already exists") from None
        started_at = time.time()
        with (files.directory / "stdout").open("wb") as out, (files.directory / "stderr").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=spec.group_dir,
                env=dict(spec.env),
                start_new_session=True,  # a signal to the daemon's group (Ctrl-C, systemd stop) must not reach it
            )
        state = {
            "pid": proc.pid,
            "start": process_start_ticks(proc.pid),
            "started_at": started_at,
            "labels": spec.run_labels(),
            "command": list(spec.command),
            "name": self._name(spec),
        }
        process_wrapper.write_atomically(files.state, json.dumps(state))
        logger.info("started: pid=%d", proc.pid)  # run_id and folder: bound by the gateway
        handle = ProcessRunHandle(files, state, runtime=self, proc=proc)
        if spec.stdin is not None:
            handle.feed(spec.stdin)
        return handle

    async def list_runs(self, instance: str) -> list[RunInfo]:
        """The runs in ``instance``'s own directory: other instances' runs are never looked at."""
        runs = []
        base = self.runs_dir / instance
        for directory in sorted(base.iterdir()) if base.is_dir() else []:
            files = _RunFiles(directory)
            try:
                state = files.load_state()
            except (OSError, ValueError):
                continue  # a run directory whose start was interrupted: nothing to reclaim
            labels = state["labels"]
            code = files.exit_code()
            runs.append(
                RunInfo(
                    run_id=labels["kanmon.run"],
                    instance=labels["kanmon.instance"],
                    folder=labels["kanmon.folder"],
                    name=state["name"],
                    running=code is None and _alive(state["pid"], state["start"]),
                    exit_code=code,
                    started_at=state["started_at"],
                    labels=labels,
                )
            )
        return [run for run in runs if run.instance == instance]

    async def attach(self, instance: str, run_id: str) -> ProcessRunHandle:
        """A handle on an existing run of ``instance``; its output is replayed from the start."""
        files = _RunFiles(self.runs_dir / instance / run_id)
        try:
            state = files.load_state()
        except (OSError, ValueError):
            raise RunNotFound(instance, run_id) from None
        if state["labels"].get("kanmon.instance") != instance:
            raise RunNotFound(instance, run_id)
        return ProcessRunHandle(files, state, runtime=self)

    @staticmethod
    def _name(spec: RunSpec) -> str:
        return f"kanmon-{spec.instance}-{folder_slug(spec.folder)}-{spec.run_id}"

    @staticmethod
    def _argv(spec: RunSpec, run_dir: Path) -> list[str]:
        # the agent gets only the spec's environment; its program is still found on the daemon's PATH if the
        # spec's environment has none
        program = shutil.which(spec.command[0], path=spec.env.get("PATH", os.environ.get("PATH")))
        if program is None:
            raise InvalidRunSpec(f"run {spec.run_id}: command {spec.command[0]!r} not found")
        wrapper = Path(process_wrapper.__file__)
        return [sys.executable, "-I", str(wrapper), str(run_dir), "--", program, *spec.command[1:]]


class ProcessRunHandle(RunHandle):
    """A run of the process runtime, followed through the files of its run directory."""

    def __init__(
        self,
        files: _RunFiles,
        state: dict[str, Any],
        *,
        runtime: ProcessRuntime,
        proc: asyncio.subprocess.Process | None = None,
    ) -> None:
        labels = state["labels"]
        idle, timeout, grace = timers_from_labels(labels)
        super().__init__(
            run_id=labels["kanmon.run"],
            instance=labels["kanmon.instance"],
            name=state["name"],
            idle_timeout=idle,
            timeout=timeout,
            stop_grace=grace,
            started_at=state["started_at"],
            output_limit=runtime.output_limit,
            reasoning_tags=runtime.reasoning_tags,
        )
        self._files = files
        self._pid: int = state["pid"]
        self._start: int | None = state["start"]
        self._proc = proc
        self._poll = runtime.poll_interval
        self._feeder: asyncio.Task[None] | None = None
        self._streams: list[tuple[int, BinaryIO]] = []

    def feed(self, payload: bytes) -> None:
        """Write the input document to the agent's stdin in the background, then close it (EOF)."""
        if self._proc is not None and self._proc.stdin is not None:
            self._feeder = asyncio.create_task(self._write_stdin(self._proc.stdin, payload))

    @staticmethod
    async def _write_stdin(stdin: asyncio.StreamWriter, payload: bytes) -> None:
        # an agent that exits without reading its input closes the pipe: that is its business, not an error
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(payload)
            await stdin.drain()
        stdin.close()

    def _finished(self) -> bool:
        return self._files.exit.exists() or not _alive(self._pid, self._start)

    def _open(self) -> list[tuple[int, BinaryIO]]:
        if not self._streams:
            directory = self._files.directory
            self._streams = [(STDOUT, (directory / "stdout").open("rb")), (STDERR, (directory / "stderr").open("rb"))]
        return self._streams

    async def _read(self) -> Chunk | None:
        while True:
            # ask "finished?" before reading, so that data written just before the exit is still read below
            finished = self._finished()
            for stream, file in self._open():
                data = file.read(_READ_SIZE)
                if data:
                    return stream, data
            if finished:
                self._close_streams()  # all read: the files stay in the run directory until release
                return None
            await asyncio.sleep(self._poll)

    def _close_streams(self) -> None:
        for _, file in self._streams:
            file.close()

    async def _abandon(self) -> None:
        self._close_streams()  # a later attach opens its own; a daemon that detaches runs often must not leak them

    def _signal_group(self, signum: int) -> None:
        """Signal the agent's process group; the wrapper if the agent has not started yet or has already ended."""
        child = self._files.child()
        if child is not None and _alive(*child):
            target = child[0]
        elif _alive(self._pid, self._start):
            target = self._pid
            if child is not None:
                # the agent has ended and the wrapper is ending what it left behind: any signal makes it SIGKILL
                # them at once, while a SIGKILL to the wrapper itself would leave them running
                signum = signal.SIGTERM
        else:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(target, signum)

    async def _wait_finished(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self._finished():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self._poll)
        return True

    async def _terminate(self, grace: float) -> None:
        self._signal_group(signal.SIGTERM)
        if not await self._wait_finished(grace):
            await self._kill()

    async def _kill(self) -> None:
        # the wrapper writes child.json a few milliseconds after it starts; kill the agent, not the wrapper,
        # so that the exit status is still recorded
        for _ in range(50):
            if self._files.child() is not None or self._finished():
                break
            await asyncio.sleep(self._poll)
        self._signal_group(signal.SIGKILL)

    async def _exit_code(self) -> int | None:
        if self._proc is not None:
            await self._proc.wait()  # reap the wrapper we started
        return self._files.exit_code()

    async def _release(self) -> None:
        if not self._finished():
            await self._kill()
            await self._wait_finished(5.0)
        if self._feeder is not None:
            await self._feeder
        if self._proc is not None:
            await self._proc.wait()
        self._close_streams()
        shutil.rmtree(self._files.directory, ignore_errors=True)
