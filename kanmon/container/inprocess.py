"""InProcessRuntime: the agent as an async Python callable, run as a task inside gated's own process.

It exists so that the gateway can be measured and tested without the cost of a container or a subprocess: the
benchmarks run 1,000 groups on the null agent to see the gateway's own overhead (SPEC §15), and fast tests drive
the message loop with the echo agent. It is no substitute for the Docker or process runtime where those are the
subject: nothing is isolated, no limit is enforced, and a run does not outlive the daemon.

The agent still speaks the output protocol (SPEC §9) as bytes through :meth:`AgentCall.emit` and
:meth:`AgentCall.write`, so the same :class:`RunHandle` timers, cap and parser apply as for real runs. The bytes
of a run are kept until it is released, so that :meth:`InProcessRuntime.attach` can replay them from the start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kanmon.container.base import RunInfo, RunSpec, folder_slug
from kanmon.container.errors import InvalidRunSpec, RunNotFound
from kanmon.container.handle import STDERR, STDOUT, Chunk, RunHandle
from kanmon.container.protocol import REASONING_TAGS, encode_block, reasoning_tag_names

__all__ = ["AgentCall", "AgentFn", "InProcessRunHandle", "InProcessRuntime", "echo_agent", "null_agent"]

logger = logging.getLogger(__name__)

# the exit statuses a shell reports for a process ended by SIGKILL and by SIGTERM
KILLED_CODE: Final = 137
TERMINATED_CODE: Final = 143
_RELEASE_WAIT = 5.0  # seconds to wait for a killed agent task to end before forgetting it anyway


@dataclass(eq=False, kw_only=True)
class AgentCall:
    """What an in-process agent gets: its spec, its parsed input document, and its stdout/stderr."""

    spec: RunSpec
    request: dict[str, Any]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set on terminate: a cooperative SIGTERM
    _sink: Callable[[int, bytes], None] = field(repr=False)

    def emit(self, block: dict[str, Any]) -> None:
        """Write one output block (SPEC §9) to the run's stdout."""
        self._sink(STDOUT, encode_block(block))

    def write(self, data: bytes | str, *, stderr: bool = False) -> None:
        """Write raw bytes (or UTF-8 text) to the run's stdout, or to its stderr."""
        self._sink(STDERR if stderr else STDOUT, data.encode() if isinstance(data, str) else data)


AgentFn = Callable[[AgentCall], Awaitable[int]]


def _parse_request(stdin: bytes) -> dict[str, Any]:
    # a real agent would fail on bad input; here the agent decides, so it gets {} rather than an exception
    try:
        request = json.loads(stdin) if stdin else {}
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


class _Run:
    """One run's shared state: the agent task, every chunk written so far, and the handles following it."""

    def __init__(self, runtime: InProcessRuntime, spec: RunSpec, name: str) -> None:
        self.runtime = runtime
        self.spec = spec
        self.name = name
        self.started_at = time.time()
        self.chunks: list[Chunk] = []
        self.readers: list[asyncio.Queue[Chunk | None]] = []
        self.exit_code: int | None = None
        self.finished = False
        self.cancel_code = KILLED_CODE  # what a cancelled agent exits with: 143 when terminate cancelled it
        self.call = AgentCall(spec=spec, request={}, _sink=self.write)
        #: the input document, once fed (at start from the spec, or later through the handle)
        self.stdin: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if spec.stdin is not None:
            self.stdin.set_result(spec.stdin)
        self.task: asyncio.Task[int] = asyncio.create_task(self._main(), name=f"kanmon-agent-{name}")
        self.task.add_done_callback(self._done)

    async def _main(self) -> int:
        self.call.request = _parse_request(await self.stdin)  # as a real agent blocks reading its stdin
        # the agent may return any awaitable, which a task cannot run directly
        return await self.runtime.agent(self.call)

    def write(self, stream: int, data: bytes) -> None:
        if self.finished or not data:
            return  # a stray write from something the agent left behind: the run's output has ended
        chunk = (stream, data)
        self.chunks.append(chunk)
        for reader in self.readers:
            reader.put_nowait(chunk)

    def subscribe(self) -> asyncio.Queue[Chunk | None]:
        """A queue replaying every chunk from the start, then following the run, then None at its end."""
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        for chunk in self.chunks:
            queue.put_nowait(chunk)
        if self.finished:
            queue.put_nowait(None)
        else:
            self.readers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Chunk | None]) -> None:
        if queue in self.readers:
            self.readers.remove(queue)

    def cancel(self, code: int) -> None:
        if not self.task.done():
            self.cancel_code = code
            self.task.cancel()

    def _done(self, task: asyncio.Task[int]) -> None:
        if task.cancelled():
            self.exit_code = self.cancel_code
        elif (exc := task.exception()) is not None:
            logger.error("the in-process agent raised", exc_info=exc)
            self.exit_code = 1
        else:
            result = task.result()
            # an agent that forgets to return a status is taken to have succeeded, as a script falling off its end
            self.exit_code = result if isinstance(result, int) else 0
        self.finished = True
        self.runtime.running -= 1
        for reader in self.readers:
            reader.put_nowait(None)
        self.readers.clear()


class InProcessRuntime:
    """Run an async agent callable as an asyncio task per run (benchmarks and fast tests; no isolation)."""

    def __init__(
        self, agent: AgentFn, *, output_limit: int | None = None, reasoning_tags: Sequence[str] = REASONING_TAGS
    ) -> None:
        self.agent = agent
        self.output_limit = output_limit
        self.reasoning_tags = reasoning_tag_names(reasoning_tags)  # ValueError now, not at the first run
        self.started = 0
        self.running = 0
        self.peak_running = 0
        self._runs: dict[tuple[str, str], _Run] = {}

    async def agent_host(self, network: str) -> str:
        """Loopback: a task in gated reaches this machine there, whatever the group's network."""
        return "127.0.0.1"

    def close(self) -> None:
        """Nothing to release: runs are tasks on gated's own loop, and end with it."""

    async def available(self) -> bool:
        """Always true: a task can always be started."""
        return True

    async def start(self, spec: RunSpec) -> InProcessRunHandle:
        """Start the agent on ``spec`` (its ``image`` and ``command`` are ignored)."""
        key = (spec.instance, spec.run_id)
        if key in self._runs:
            raise InvalidRunSpec(f"run {spec.run_id} of instance {spec.instance} already exists")
        run = _Run(self, spec, f"kanmon-{spec.instance}-{folder_slug(spec.folder)}-{spec.run_id}")
        self._runs[key] = run
        self.started += 1
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        logger.info("started in-process")  # run_id and folder: bound by the gateway
        return InProcessRunHandle(run)

    async def list_runs(self, instance: str) -> list[RunInfo]:
        """The runs of ``instance`` not yet released."""
        return [
            RunInfo(
                run_id=run.spec.run_id,
                instance=run.spec.instance,
                folder=run.spec.folder,
                name=run.name,
                running=not run.finished,
                exit_code=run.exit_code,
                started_at=run.started_at,
                labels=run.spec.run_labels(),
            )
            for (owner, _), run in sorted(self._runs.items())
            if owner == instance
        ]

    async def attach(self, instance: str, run_id: str) -> InProcessRunHandle:
        """Another handle on a run of ``instance``, replaying its output from the start."""
        run = self._runs.get((instance, run_id))
        if run is None:
            raise RunNotFound(instance, run_id)
        return InProcessRunHandle(run)

    def _forget(self, run: _Run) -> None:
        key = (run.spec.instance, run.spec.run_id)
        if self._runs.get(key) is run:
            del self._runs[key]


class InProcessRunHandle(RunHandle):
    """A handle on an in-process run, reading the chunks its agent writes."""

    def __init__(self, run: _Run) -> None:
        spec = run.spec
        super().__init__(
            run_id=spec.run_id,
            instance=spec.instance,
            name=run.name,
            idle_timeout=spec.idle_timeout,
            timeout=spec.timeout,
            stop_grace=spec.stop_grace,
            started_at=run.started_at,
            output_limit=run.runtime.output_limit,
            reasoning_tags=run.runtime.reasoning_tags,
        )
        self._run = run
        self._queue = run.subscribe()

    def feed(self, payload: bytes) -> None:
        """Hand the agent its input document (once)."""
        if not self._run.stdin.done():
            self._run.stdin.set_result(payload)

    async def _read(self) -> Chunk | None:
        return await self._queue.get()

    async def _terminate(self, grace: float) -> None:
        run = self._run
        run.call.stopping.set()
        if not run.task.done():
            await asyncio.wait({run.task}, timeout=grace)
        # no waiting after the cancel: an agent that swallows it is the base handle's to kill after its slack
        run.cancel(TERMINATED_CODE)

    async def _kill(self) -> None:
        self._run.cancel(KILLED_CODE)

    async def _exit_code(self) -> int | None:
        if not self._run.task.done():
            await asyncio.wait({self._run.task})
        return self._run.exit_code

    async def _abandon(self) -> None:
        self._run.unsubscribe(self._queue)

    async def _release(self) -> None:
        run = self._run
        run.unsubscribe(self._queue)
        if not run.task.done():
            run.cancel(KILLED_CODE)
            await asyncio.wait({run.task}, timeout=_RELEASE_WAIT)
        run.runtime._forget(run)


async def echo_agent(call: AgentCall) -> int:
    """The reference echo agent in-process: a heartbeat, then ``echo: <text>`` for each message of the prompt."""
    call.emit({"heartbeat": True})
    session = call.request.get("sessionId") or str(uuid.uuid4())
    # imported here, not at the top: `python -m kanmon.container.echo_agent` runs that module as __main__, and the
    # package (which imports this module) must not have imported it already
    from kanmon.container.echo_agent import messages

    for text in messages(str(call.request.get("prompt", ""))):
        call.emit({"status": "ok", "result": f"echo: {text}", "newSessionId": session})
    return 0


async def null_agent(call: AgentCall) -> int:
    """An agent that does nothing at all, so that a benchmark measures only the gateway around it."""
    return 0
