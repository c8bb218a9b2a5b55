"""Runs a previous gated left in flight, and what finished runs left behind (SPEC §14, hardening item 12).

On start, :meth:`Reclaimer.reclaim` lists the runs still ``starting``/``running`` in the store; the runner resumes
each one first, in its own lane: a container of this instance that still exists (running or finished) is
re-attached and its output replayed from the start, so the run ends exactly as it would have; replies already stored
are recognised by ``(run_id, output_index)`` and not stored again. A run whose container is gone failed without
output and its batch runs again, unless it had already answered (SPEC §9's error with output: never run twice). A run
recorded by another instance name (a gated that held this store before, under another ``--instance``) is treated as
gone: its containers are not this gated's to touch.

Leftovers are containers (or run directories) of this instance that belong to no run in flight: a finished run whose
container could not be removed (the engine went away just then), a container created but never started when the
engine failed mid-start, a run started for a lane that had nothing to take after all. They are removed at start, and
again whenever a runtime that was unreachable answers again, not only at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from kanmon.container import ContainerError, Exited, ExitReason, RunNotFound, Runtime, RuntimeUnavailable
from kanmon.container.handle import RunHandle
from kanmon.gateway.outcome import Ending
from kanmon.store import Message, Run, RunEnd
from kanmon.store.aio import AsyncStore

__all__ = ["FLUSH_INTERRUPTED", "Reclaimer", "settled_end"]

logger = logging.getLogger(__name__)

#: The error a reclaimed memory flush turn (:mod:`kanmon.gateway.flush_turn`) is closed with: its gated stopped
#: during it.
FLUSH_INTERRUPTED = "a memory flush turn interrupted when gated stopped; not run again"


def settled_end(run: Run) -> RunEnd:
    """The end of reclaimed ``run`` whose batch was settled while gated was away (a dead letter, an operator): closed
    as an error with nothing left to deliver. A memory flush turn (:mod:`kanmon.gateway.flush_turn`, no batch) is
    closed as interrupted, never run again."""
    flush = run.first_seq is None
    return RunEnd(
        run_id=run.id, chat_jid=run.chat_jid, seqs=[], rows="done", run_status="error", folder=run.group_folder,
        topic=run.topic, error=FLUSH_INTERRUPTED if flush else "its batch was settled while gated was away",
        flush_session=(run.session_id or "") if flush else None,  # its turn's session: closes its flush only
    )  # fmt: skip


class Reclaimer:
    """Reclaims orphaned runs, removes leftovers, and keeps track of which runtimes answer."""

    def __init__(
        self, db: AsyncStore, runtimes: Mapping[str, Runtime], instance: str, *, live: Callable[[], set[str]]
    ) -> None:
        self._db = db
        self._runtimes = runtimes
        self._instance = instance
        self._live = live
        self._sweeps: set[asyncio.Task[None]] = set()
        #: runtimes that could not be reached, with the reason (cleared when one answers again)
        self.unavailable: dict[str, str] = {}

    async def reclaim(self, used: set[str]) -> list[Run]:
        """The runs left in flight (to resume first); leftovers in the runtimes in ``used`` are removed now."""
        stale = await self._db.retrying(self._db.store.runs_in_flight)
        for run in stale:
            whose = "" if run.instance == self._instance else f" by instance {run.instance}"
            logger.warning(
                "run %s of %s was in flight%s when gated stopped: reclaiming it", run.id, run.chat_jid, whose
            )
        # only runtimes something here uses: a process-only install must not go looking for a Docker engine
        for key in sorted(used | {run.runtime for run in stale}):
            await self._sweep(key, keep={run.id for run in stale})
        return stale

    async def resume(self, run: Run) -> tuple[RunHandle | None, list[Message]] | None:
        """Re-attach ``run`` (None for the handle when its container is gone) and read its batch's waiting rows.

        Returns None when its runtime cannot be reached now (the lane is deferred; nothing was changed).
        """
        runtime = self._runtimes.get(run.runtime)
        handle = None
        if runtime is not None and run.instance == self._instance:
            try:
                handle = await runtime.attach(self._instance, run.id)
            except RunNotFound:
                handle = None
            except RuntimeUnavailable as exc:
                self.mark_unavailable(run.runtime, str(exc))
                return None
        rows = await self._db.retrying(self._db.store.run_rows, run)
        return handle, rows

    async def gone(self, run: Run) -> Ending:
        """The ending of reclaimed ``run`` whose container no longer exists, by what it left in the store: the replies
        it stored and the actions it applied. One that did either ran (removed by hand, say, or an in-process run
        that did not outlive gated): SPEC §9's error with output, so its batch is not run twice and its actions
        are not applied twice. One that did neither never started."""
        store = self._db.store
        answered: int = await self._db.retrying(store.count_outputs, run.id)
        acted = len(await self._db.retrying(store.run_actions, run.id))
        if answered or acted:
            exited = Exited(code=None, reason=ExitReason.LOST, outputs=answered, delivered=answered)
            return Ending(exited=exited, produced=answered, acted=acted)
        return Ending(exited=None, problems=["its container was gone after the restart: it never started"])

    def mark_unavailable(self, key: str, reason: str) -> None:
        """Runtime ``key`` did not answer: runs wait (``/readyz`` says why) until it does."""
        if key not in self.unavailable:
            logger.error("runtime %s unavailable (%s): runs wait until it answers", key, reason)
        self.unavailable[key] = reason

    def mark_available(self, key: str) -> None:
        """Runtime ``key`` answered: if it had not, remove what its outage left behind (in the background)."""
        if self.unavailable.pop(key, None) is None:
            return
        logger.warning("runtime %s is reachable again; waiting lanes start", key)
        task = asyncio.create_task(self._sweep(key), name=f"kanmon-sweep-{key}")
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep(self, key: str, keep: set[str] | None = None) -> None:
        """Remove runs of this instance in runtime ``key`` that no run in flight or live run owns."""
        runtime = self._runtimes.get(key)
        if runtime is None:
            return
        try:
            if keep is None:
                keep = {run.id for run in await self._db.retrying(self._db.store.runs_in_flight, self._instance)}
            runs = await runtime.list_runs(self._instance)
            for info in runs:
                if info.run_id in keep or info.run_id in self._live():
                    continue
                handle = await runtime.attach(self._instance, info.run_id)
                await handle.close()
                logger.info("removed %s, left over from a run that is over", info.name)
        except ContainerError as exc:
            logger.warning("could not clear the %s runtime's leftovers: %s", key, exc)
