"""A run's start, before it takes its batch (SPEC §9): its spec, its secrets and its agent, up and waiting for input.

:class:`RunStarter` builds the spec from the group it is given (the runner's: as of the loop's last tick), adds
the credential proxy's URL and token per upstream (issue 19), reads the secrets' values (a rotated file counts), and
starts the agent with its input left open: a container takes a hundred milliseconds or more to come up, and messages
for the lane that arrive meanwhile join the batch. A start that fails for the run's own reasons (a bad spec, a
missing secret or image) is not an exception: the run goes on without an agent and ends as a failed start
(retried, then dead-lettered), with the reason in :attr:`Started.problems`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kanmon.clock import Clock
from kanmon.container import ContainerError, InvalidRunSpec, RunSpec, Runtime, RuntimeUnavailable
from kanmon.container.handle import RunHandle
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.prompt import render_note
from kanmon.gateway.reclaim import Reclaimer
from kanmon.gateway.spec import RunDefaults, build_spec, new_run_id, run_secrets, runtime_name
from kanmon.gateway.upstreams import CredentialGrants
from kanmon.logcontext import bound
from kanmon.store import Group

__all__ = ["Removals", "RunStarter", "Runtimes", "Started", "release"]

logger = logging.getLogger("kanmon.gateway.runner")  # the runner's lines, under the runner's name

#: The runtimes by name (``docker``, ``process``, …): a group's ``container_config.runtime`` picks one.
Runtimes = Mapping[str, Runtime]


@dataclass
class Started:
    """A run about to take its batch: its id and runtime, its agent (None: it could not start, see ``problems``),
    the secrets its input document carries, and when it began (the clock's monotonic seconds)."""

    run_id: str
    runtime: str
    began: float
    handle: RunHandle | None = None
    problems: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)  # rendered system messages run_starting hooks added


class RunStarter:
    """Starts runs' agents on the runtimes by name (``docker``, ``process``, …)."""

    def __init__(
        self,
        runtimes: Runtimes,
        defaults: RunDefaults,
        *,
        clock: Clock,
        reclaimer: Reclaimer,
        credentials: CredentialGrants | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self._hooks = hooks
        self._runtimes = runtimes
        self._defaults = defaults
        self._clock = clock
        self._reclaimer = reclaimer
        self._credentials = credentials
        #: Runs whose runtime start is in flight: their containers exist before their handles do, and a sweep of
        #: leftovers (after an outage) must leave them alone.
        self.starting: set[str] = set()

    async def start(self, group: Group, *, run_timeout: float | None = None) -> Started | None:
        """Start a run of ``group``'s agent; None when its runtime cannot be reached now (nothing was started).

        ``run_timeout``: seconds the run may take in all instead of the group's timeouts (the memory flush turn's own).
        """
        runtime_key = runtime_name(group, self._defaults)
        started = Started(new_run_id(self._clock.now().timestamp()), runtime_key, self._clock.monotonic())
        with bound(run_id=started.run_id):  # the runtime's lines, and the tasks it starts, are about this run
            return await self._start_run(group, runtime_key, started, run_timeout)

    async def _start_run(
        self, group: Group, runtime_key: str, started: Started, run_timeout: float | None
    ) -> Started | None:
        try:
            spec = build_spec(group, self._defaults, run_id=started.run_id)
            if run_timeout is not None:
                spec = replace(spec, timeout=run_timeout, idle_timeout=None)
            extras = await self._hooks.run_starting(started.run_id, group, runtime_key)  # issue 16 item 6
            if extras.env:
                spec = replace(spec, env={**extras.env, **spec.env})  # the group's own variables win
            started.notes = [render_note("hook", "run_starting", note) for note in extras.notes]
            if self._credentials is not None:
                spec = await self._credentials.grant(spec, group, self._runtimes.get(runtime_key))
            started.secrets = await run_secrets(group, self._defaults)  # read at every start: a rotated value counts
            started.handle = await self._start(runtime_key, spec)
        except RuntimeUnavailable as exc:
            self._reclaimer.mark_unavailable(runtime_key, str(exc))
            return None
        except (ContainerError, InvalidRunSpec, KeyError) as exc:
            started.problems.append(f"start failed: {exc}")
            logger.error("could not start: %s", exc)
        return started

    async def _start(self, runtime_key: str, spec: RunSpec) -> RunHandle:
        runtime = self._runtimes.get(runtime_key)
        if runtime is None:
            raise KeyError(f"runtime {runtime_key!r} is not available in this gated")
        self.starting.add(spec.run_id)
        try:
            handle = await runtime.start(spec)
        finally:
            self.starting.discard(spec.run_id)
        self._reclaimer.mark_available(runtime_key)
        return handle


async def release(handle: RunHandle) -> None:
    """Remove a run's container (or run directory) once its outcome is recorded (SPEC §9: removal after the output
    has been consumed; removed before its outcome, a run gated crashed during could not be replayed)."""
    try:
        await handle.close()
    except ContainerError as exc:
        # recorded already; it is removed as a leftover when its runtime answers again or at the next start
        logger.warning("could not remove %s yet: %s", handle.name, exc)


class Removals:
    """Containers of finished runs, removed in the background: the queue's slot goes to the next run at once.

    A run's outcome is stored before its container goes (SPEC §9), as with :func:`release`; only the wait is no longer
    the lane's. Removing a container took the engine 20–55 ms while others started, and a burst's next wave waited for
    it (issue 13: a 200-message burst over 20 groups took 1.20 times the floor of plain `docker run`, and 1.13 times
    after: the means of six interleaved pairs of ``bench/burst.py`` on a loaded machine, five of them in its favour).
    Whatever a stopping gated does not wait for stays an exited container, removed as a leftover at the next start.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Removals still in flight."""
        return len(self._tasks)

    def start(self, handle: RunHandle) -> None:
        """Remove ``handle``'s container (or run directory) in the background; its log lines keep the run's context."""
        task = asyncio.create_task(release(handle), name=f"kanmon-remove-{handle.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def wait(self) -> None:
        """Until the removals in flight are done (cancelling the wait leaves them running)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # release() takes the runtime's own errors; anything else would otherwise go unseen
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("could not remove a finished run's container: %r", exc, exc_info=exc)
