"""One run of a lane (SPEC §8–§10): take the batch, start the agent, record its replies, apply the outcome.

The :class:`~kanmon.queue.GroupQueue` calls :meth:`LaneRunner.run_lane` when the lane's turn comes. A run:

1. picks the lane's oldest waiting stream (a chat, topic and origin) that the impulse gate is not holding, and
   takes up to ``batch_limit`` of its rows (the rest wait for the next run);
2. records a ``session_log`` row (``starting``) and takes the group's system messages, in one transaction, before
   anything starts;
3. starts the runtime with the session of ``(folder, topic)`` and stores each cleaned result as an outbound row
   the moment it arrives, keyed ``(run_id, output_index)`` so a replay can never store it twice;
4. applies the outcome rules of SPEC §9 in one transaction:

   ============================================  ===========  ==========  ==================  ===================
   how the run ended                             rows         cursor      session             queue is told
   ============================================  ===========  ==========  ==================  ===================
   ``/stop``                                     done         advances    newSessionId kept   STOPPED (no retry)
   delivered output (even if it then failed)     done         advances    newSessionId kept   OK
   exit 0, nothing to say                        done         advances    newSessionId kept   OK
   anything else (exit ≠ 0, timeout, crash)      still new    stays       evicted             RETRY
   ============================================  ===========  ==========  ==================  ===================

   After the last attempt the queue calls :meth:`LaneRunner.dead_letter`: the rows become ``dead``, the cursor
   passes them, the session is evicted, and the chat gets exactly one apology.

Replies of a delegated batch (rows in ``local:<folder>`` that carry ``forwarded_from``) go to the originating chat,
never into the ``local:`` chat, so a delegate's answer can never come back to it as a new message.

A cancelled run (gated shutting down after its drain) is *detached*: the container keeps running and its
``session_log`` row stays ``running`` for the next gated to reclaim (SPEC §14). Nothing is recorded as failed.

On start, :meth:`LaneRunner.reclaim` takes over the runs a previous gated of this instance left in flight. Each one's
lane runs it first: a container that still exists (running or finished) is re-attached and its output replayed from
the start, so the run ends exactly as it would have; replies already stored are found by ``(run_id, output_index)``
and not stored again. A run whose container never came to be failed without output and its batch runs again.
Containers of other instances are never looked at.

A runtime that cannot be reached (the Docker engine is down) starts nothing: the lane is ``DEFERRED`` and tried
again later without using up an attempt, and :attr:`LaneRunner.unavailable` says why for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from kanmon.clock import Clock, SystemClock
from kanmon.container import (
    AgentInput,
    ContainerError,
    Exited,
    ExitReason,
    Output,
    PromptMessage,
    RunInfo,
    RunNotFound,
    RuntimeUnavailable,
    render_prompt,
)
from kanmon.container.handle import RunHandle
from kanmon.container.payload import xml_escape
from kanmon.folders import split_jid
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.spec import RunDefaults, build_spec, runtime_name
from kanmon.queue import Lane, LaneResult, lane_for
from kanmon.store import (
    BatchEnd,
    Group,
    LaneHead,
    Message,
    NewMessage,
    Run,
    RunStatus,
    Store,
    StoreUnavailable,
    SystemMessage,
)

__all__ = ["DEAD_LETTER_TEXT", "Batch", "LaneRunner", "Runtimes", "output_id"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

DEAD_LETTER_TEXT = "Sorry — I couldn't process that. Send it again to retry."

#: The runtimes by name (``docker``, ``process``, …): a group's ``container_config.runtime`` picks one.
Runtimes = Mapping[str, Any]
#: Runs a blocking store call off the event loop (``asyncio.to_thread`` by default).
Offload = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Batch:
    """The rows one run takes: consecutive waiting rows of one chat, topic and origin, for one folder."""

    head: LaneHead
    rows: Sequence[Message]

    @property
    def reply_jid(self) -> str:
        """Where the agent's replies go: the originating chat of a delegated batch, else the batch's chat."""
        return self.head.forwarded_from or self.head.chat_jid

    @property
    def reply_topic(self) -> str:
        """The topic of the replies: the thread the last message came from (a web conversation, a platform thread)."""
        return self.rows[-1].topic

    @property
    def reply_to(self) -> str | None:
        """The message a reply answers: the batch's last, unless the reply goes to another chat (a delegation)."""
        return self.rows[-1].id if self.reply_jid == self.head.chat_jid else None

    @property
    def seqs(self) -> list[int]:
        """The seqs of the rows."""
        return [row.seq for row in self.rows]


@dataclass(slots=True)
class _Outcome:
    """What a run produced, gathered while its events stream."""

    exited: Exited | None = None
    session_id: str | None = None
    error_block: str | None = None
    delivered: int = 0
    errors: list[str] = field(default_factory=list)


def output_id(run_id: str, index: int) -> str:
    """The message id of output ``index`` of run ``run_id`` (unique in any chat)."""
    return f"run-{run_id}-{index}"


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by start time and is unique without coordination: ``YYYYmmddHHMMSS-<8 hex>``."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(4)}"


class LaneRunner:
    """Runs lanes for the queue: batches in, replies and outcomes out, all through the store."""

    def __init__(
        self,
        store: Store,
        runtimes: Runtimes,
        defaults: RunDefaults,
        *,
        metrics: GatewayMetrics,
        is_held: Callable[[str], bool] = lambda jid: False,
        on_change: Callable[[], None] = lambda: None,
        requeue: Callable[[Lane], None] = lambda lane: None,
        clock: Clock | None = None,
        offload: Offload = asyncio.to_thread,
    ) -> None:
        self._store = store
        self._runtimes = runtimes
        self._defaults = defaults
        self._metrics = metrics
        self._is_held = is_held
        self._on_change = on_change
        self._requeue = requeue
        self._clock: Clock = clock or SystemClock()
        self._offload = offload
        self._handles: dict[Lane, RunHandle] = {}
        self._failed: dict[Lane, Batch] = {}  # the batch a retry or dead letter is about
        self._orphaned: dict[Lane, Run] = {}  # runs a previous gated left in flight, resumed before anything else
        self._stop_asked: set[Lane] = set()  # /stop arrived before the run's handle existed
        #: runtimes that could not be reached, with the reason (cleared when one answers again)
        self.unavailable: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ queue hooks
    async def run_lane(self, lane: Lane) -> LaneResult:
        """Run the lane's next batch and say how it ended; a lane with nothing waiting is simply OK."""
        try:
            return await self._run_lane(lane)
        finally:
            self._stop_asked.discard(lane)  # a /stop is for the run it arrived during, never the next one

    async def _run_lane(self, lane: Lane) -> LaneResult:
        orphan = self._orphaned.get(lane)
        if orphan is not None:
            return await self._resume(lane, orphan)
        batch, more = await self._next_batch(lane)
        if batch is None:
            self._failed.pop(lane, None)
            return LaneResult.OK
        if more:
            # enqueued while running: the queue runs the lane once more, behind the lanes already waiting
            self._requeue(lane)
        group = await self._call(self._store.get_group, lane.folder)
        if group is None:
            logger.error("lane=%s: group %s is not registered; dead-lettering its rows", lane, lane.folder)
            self._failed[lane] = batch
            return LaneResult.DEAD
        runtime_key = runtime_name(group, self._defaults)
        if not await self._reachable(runtime_key):
            return LaneResult.DEFERRED
        result = await self._run_batch(lane, group, batch)
        if result is LaneResult.RETRY:
            self._failed[lane] = batch
        else:
            self._failed.pop(lane, None)
        self._on_change()
        return result

    async def dead_letter(self, lane: Lane) -> None:
        """Give up on the lane's failed batch: rows dead, cursor past them, session evicted, one apology."""
        batch = self._failed.pop(lane, None) or (await self._next_batch(lane))[0]
        if batch is None:
            return
        head = batch.head
        end = BatchEnd(
            run_id=None,
            chat_jid=head.chat_jid,
            seqs=batch.seqs,
            rows="dead",
            run_status="error",
            folder=head.folder,
            topic=head.topic,
            evict_session=True,
        )
        cursor = await self._call(self._store.end_batch, end)
        apology = NewMessage(
            chat_jid=batch.reply_jid,
            # derived from the batch, so a repeated dead letter of the same rows apologises once
            id=f"gw-dead-{head.chat_jid}-{batch.rows[0].seq}",
            content=DEAD_LETTER_TEXT,
            direction="out",
            origin=GATEWAY_ORIGIN,
            topic=batch.reply_topic,
            reply_to_id=batch.reply_to,
        )
        await self._call(self._store.put_message, apology)
        self._metrics.dead_letters.inc()
        logger.error(
            "dead letter lane=%s chat=%s seqs=%d..%d (%d rows); cursor now %d",
            lane,
            head.chat_jid,
            batch.rows[0].seq,
            batch.rows[-1].seq,
            len(batch.rows),
            cursor,
        )
        self._on_change()

    async def reclaim(self) -> list[Lane]:
        """Take over the runs a previous gated of this instance left in flight; returns their lanes (to enqueue).

        Also removes what this instance's finished runs left behind (a container whose outcome was recorded just
        before a crash). Other instances' containers are never listed, let alone touched.
        """
        stale = await self._call(self._store.runs_in_flight, self._defaults.instance)
        for run in stale:
            lane = lane_for(run.group_folder, run.chat_jid, run.topic)
            self._orphaned[lane] = run
            logger.warning("run %s of lane=%s was in flight when gated stopped: reclaiming it", run.id, lane)
        groups = await self._call(self._store.list_groups)
        # only runtimes something here uses: a process-only install must not go looking for a Docker engine
        used = {runtime_name(group, self._defaults) for group in groups} | {run.runtime for run in stale}
        await self._remove_leftovers({run.id for run in stale}, used)
        return list(self._orphaned)

    async def _resume(self, lane: Lane, run: Run) -> LaneResult:
        runtime = self._runtimes.get(run.runtime)
        if runtime is None:
            handle = None
        elif not await self._reachable(run.runtime):
            return LaneResult.DEFERRED
        else:
            try:
                handle = await runtime.attach(self._defaults.instance, run.id)
            except RunNotFound:
                handle = None
            except RuntimeUnavailable as exc:
                self._mark_unavailable(run.runtime, str(exc))
                return LaneResult.DEFERRED
        del self._orphaned[lane]
        rows = await self._call(self._store.run_rows, run)
        head = LaneHead(run.group_folder, run.chat_jid, run.topic, _origin(rows), run.first_seq or 0, len(rows))
        outcome = _Outcome(session_id=run.session_id)
        began = time.monotonic()
        if handle is None:
            await self._gone(run, outcome)
        elif rows:
            logger.info("run %s of lane=%s re-attached; replaying its output", run.id, lane)
            if not await self._watch(lane, handle, Batch(head, rows), run.id, outcome):
                return await self._lost_contact(lane, run.id, run.runtime)
        else:
            await handle.close()  # its batch was settled already: nothing left to deliver
        if not rows:
            await self._call(self._store.update_run, run.id, status="error", ended_at=self._clock.now())
            return LaneResult.OK
        result = await self._finish(lane, Batch(head, rows), run.id, outcome, time.monotonic() - began)
        await self._release(handle)
        if result is LaneResult.RETRY:
            self._failed[lane] = Batch(head, rows)
        self._on_change()
        return result

    async def _gone(self, run: Run, outcome: _Outcome) -> None:
        """A reclaimed run whose container no longer exists: it never started, unless it had already answered."""
        answered = await self._call(self._store.count_outputs, run.id)
        if answered:
            # it ran and spoke (removed by hand, say): SPEC §9's error with output, so its batch is not run twice
            outcome.delivered = answered
            outcome.exited = Exited(code=None, reason=ExitReason.LOST, outputs=answered, delivered=answered)
        else:
            outcome.errors.append("its container was gone after the restart: it never started")

    async def _release(self, handle: RunHandle | None) -> None:
        """Remove the run's container (or run directory) now that its outcome is recorded."""
        if handle is None:
            return
        try:
            await handle.close()
        except ContainerError as exc:
            # recorded already; the next start removes it as a leftover
            logger.warning("run %s: could not remove %s yet: %s", handle.run_id, handle.name, exc)

    async def _remove_leftovers(self, in_flight: set[str], used: set[str]) -> None:
        """Release this instance's runs that are over (their outcome is recorded) but whose container remains."""
        for key, runtime in self._runtimes.items():
            if key not in used:
                continue
            try:
                runs: list[RunInfo] = await runtime.list_runs(self._defaults.instance)
                for info in runs:
                    if info.run_id not in in_flight:
                        handle = await runtime.attach(self._defaults.instance, info.run_id)
                        await handle.close()
                        logger.info("removed %s, left over from a finished run", info.name)
            except ContainerError as exc:
                logger.warning("could not list the %s runtime's leftovers: %s", key, exc)

    async def _reachable(self, runtime_key: str) -> bool:
        runtime = self._runtimes.get(runtime_key)
        if runtime is None:
            return True  # reported as this run's error by _start
        if await runtime.available():
            if self.unavailable.pop(runtime_key, None) is not None:
                logger.warning("runtime %s is reachable again; waiting lanes start", runtime_key)
            return True
        self._mark_unavailable(runtime_key, f"the {runtime_key} runtime does not answer")
        return False

    def _mark_unavailable(self, runtime_key: str, reason: str) -> None:
        if runtime_key not in self.unavailable:
            logger.error("runtime %s unavailable (%s): runs wait until it answers", runtime_key, reason)
        self.unavailable[runtime_key] = reason

    async def stop(self, lane: Lane) -> None:
        """Stop the lane's running agent (``/stop``); the queue records the run as stopped."""
        handle = self._handles.get(lane)
        if handle is None:
            self._stop_asked.add(lane)  # still starting: stopped the moment its handle exists
        else:
            await handle.stop()

    def running(self) -> dict[Lane, str]:
        """Lanes with a live run, and the run ids."""
        return {lane: handle.run_id for lane, handle in self._handles.items()}

    # ------------------------------------------------------------------------------------------------ a run
    async def _next_batch(self, lane: Lane) -> tuple[Batch | None, bool]:
        """The lane's oldest runnable stream as a batch, and whether more rows of the lane wait after it."""
        heads = await self._call(self._store.lane_heads, lane.folder)
        runnable = [
            h for h in heads if lane_for(h.folder, h.chat_jid, h.topic) == lane and not self._is_held(h.chat_jid)
        ]
        for index, head in enumerate(runnable):
            rows = await self._call(self._store.lane_batch, head, self._defaults.batch_limit)
            if rows:
                more = index + 1 < len(runnable) or head.count > len(rows)
                return Batch(head, rows), more
        return None, False

    async def _run_batch(self, lane: Lane, group: Group, batch: Batch) -> LaneResult:
        head = batch.head
        run_id = new_run_id()
        session_id = await self._session(group, head.topic)
        runtime_key = runtime_name(group, self._defaults)
        run = Run(
            id=run_id,
            instance=self._defaults.instance,
            group_folder=group.folder,
            topic=head.topic,
            chat_jid=head.chat_jid,
            runtime=runtime_key,
            status="starting",
            started_at=self._clock.now(),
            session_id=session_id,
            first_seq=batch.rows[0].seq,
            last_seq=batch.rows[-1].seq,
            message_count=len(batch.rows),
        )
        notes = await self._call(self._store.begin_run, run)
        began = time.monotonic()
        logger.info(
            "run start lane=%s run=%s chat=%s messages=%d",
            lane,
            run_id,
            head.chat_jid,
            len(batch.rows),
            extra={"lane": str(lane), "run_id": run_id, "chat": head.chat_jid, "messages": len(batch.rows)},
        )
        outcome = _Outcome(session_id=session_id)
        handle = await self._start(lane, group, batch, run_id, session_id, notes, outcome)
        if handle is not None and not await self._watch(lane, handle, batch, run_id, outcome):
            return await self._lost_contact(lane, run_id, runtime_key)
        result = await self._finish(lane, batch, run_id, outcome, time.monotonic() - began)
        await self._release(handle)
        return result

    async def _watch(self, lane: Lane, handle: RunHandle, batch: Batch, run_id: str, outcome: _Outcome) -> bool:
        """Follow the run to its end; False when the runtime failed us before the run was seen to end."""
        self._handles[lane] = handle
        if lane in self._stop_asked:
            await handle.stop()
        try:
            await self._consume(handle, batch, run_id, outcome)
        except asyncio.CancelledError:
            logger.warning("run %s detached at shutdown: its container keeps running for the next gated", run_id)
            raise
        except ContainerError as exc:
            # we no longer know how the run ends, but it may well go on: never run its batch a second time
            logger.error("run %s: lost contact with its runtime (%s); it is re-attached when it answers", run_id, exc)
            return False
        finally:
            self._handles.pop(lane, None)
        return True

    async def _lost_contact(self, lane: Lane, run_id: str, runtime_key: str) -> LaneResult:
        """The run may well go on (the engine is unreachable, not the container gone): re-attach it later, like a
        run reclaimed after a restart, rather than run its batch a second time."""
        run = await self._call(self._store.get_run, run_id)
        if run is not None:
            self._orphaned[lane] = run
        self._mark_unavailable(runtime_key, "lost contact during a run")
        return LaneResult.DEFERRED

    async def _session(self, group: Group, topic: str) -> str | None:
        session = await self._call(self._store.get_session, group.folder, topic)
        if session is None:
            return None
        expiry = float(group.container_config.get("session_idle_expiry") or self._defaults.session_idle_expiry)
        idle = (self._clock.now() - session.updated_at).total_seconds()
        if expiry <= 0 or idle <= expiry:
            return session.session_id
        await self._call(self._store.delete_session, group.folder, topic)
        body = f"The previous session was idle for {idle:.0f}s (limit {expiry:g}s); this is a new session."
        await self._call(
            self._store.add_system_message, group.folder, origin=GATEWAY_ORIGIN, event="new_session", body=body
        )
        logger.info("session expired folder=%s topic=%r idle=%.0fs", group.folder, topic, idle)
        return None

    async def _start(
        self,
        lane: Lane,
        group: Group,
        batch: Batch,
        run_id: str,
        session_id: str | None,
        notes: list[SystemMessage],
        outcome: _Outcome,
    ) -> RunHandle | None:
        runtime_key = runtime_name(group, self._defaults)
        try:
            runtime = self._runtimes[runtime_key]
        except KeyError:
            outcome.errors.append(f"runtime {runtime_key!r} is not available in this gated")
            return None
        payload = self._payload(group, batch, run_id, session_id, notes)
        began = time.monotonic()
        try:
            spec = build_spec(group, self._defaults, run_id=run_id, stdin=payload.to_bytes())
            handle: RunHandle = await runtime.start(spec)
        except ContainerError as exc:
            outcome.errors.append(f"start failed: {exc}")
            logger.error("run %s of lane=%s could not start: %s", run_id, lane, exc)
            return None
        self._metrics.container_start_seconds.observe(time.monotonic() - began)
        await self._call(self._store.update_run, run_id, status="running", container=handle.name)
        return handle

    def _payload(
        self, group: Group, batch: Batch, run_id: str, session_id: str | None, notes: list[SystemMessage]
    ) -> AgentInput:
        last = batch.rows[-1]
        platform = split_jid(batch.reply_jid)[0]
        prompt = render_prompt(
            [_prompt_message(row) for row in batch.rows],
            now=self._clock.now(),
            system=[_render_note(note) for note in notes],
        )
        return AgentInput(
            prompt=prompt,
            chat_jid=batch.reply_jid,
            group_folder=group.folder,
            run_id=run_id,
            session_id=session_id,
            topic=batch.head.topic,
            assistant_name=self._defaults.assistant_name,
            channel_name=platform,
            message_id=last.id,
            sender=last.sender,
            secrets=self._defaults.secrets,
        )

    async def _consume(self, handle: RunHandle, batch: Batch, run_id: str, outcome: _Outcome) -> None:
        # Stop reading at Exited, before the handle releases the container: it is removed only once the outcome is
        # recorded (_release_after). Removed first, a crash in between would leave a run in flight with no
        # container, and its batch, already answered, would run again.
        async with contextlib.aclosing(handle.events()) as events:
            async for event in events:
                if isinstance(event, Output):
                    await self._output(event, batch, run_id, outcome)
                elif isinstance(event, Exited):
                    outcome.exited = event
                    break

    async def _output(self, output: Output, batch: Batch, run_id: str, outcome: _Outcome) -> None:
        if output.new_session_id:
            outcome.session_id = output.new_session_id
        if output.status == "error" and not output.deliverable:
            outcome.error_block = output.error or "the agent reported an error"
        if not output.deliverable:
            return
        reply = NewMessage(
            chat_jid=batch.reply_jid,
            id=output_id(run_id, output.index),
            content=output.text,
            direction="out",
            origin=GATEWAY_ORIGIN,
            topic=batch.reply_topic,
            reply_to_id=batch.reply_to,
            run_id=run_id,
            output_index=output.index,
        )
        await self._call(self._store.put_message, reply)
        outcome.delivered += 1
        self._on_change()

    async def _finish(self, lane: Lane, batch: Batch, run_id: str, outcome: _Outcome, seconds: float) -> LaneResult:
        exited = outcome.exited
        result, rows, status, error = _judge(exited, outcome)
        end = BatchEnd(
            run_id=run_id,
            chat_jid=batch.head.chat_jid,
            seqs=batch.seqs,
            rows=rows,
            run_status=status,
            folder=batch.head.folder,
            topic=batch.head.topic,
            session_id=outcome.session_id if result is not LaneResult.RETRY else None,
            evict_session=result is LaneResult.RETRY,
            output_count=outcome.delivered,
            error=error,
        )
        cursor = await self._call(self._store.end_batch, end)
        self._metrics.runs.labels(result=status).inc()
        self._metrics.run_seconds.observe(seconds)
        logger.info(
            "run finish lane=%s run=%s result=%s duration=%.2fs outputs=%d cursor=%d%s",
            lane,
            run_id,
            status,
            seconds,
            outcome.delivered,
            cursor,
            f" error={error}" if error else "",
            extra={"lane": str(lane), "run_id": run_id, "result": status, "duration": round(seconds, 3)},
        )
        return result

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A store call off the event loop, retried for as long as the database is unreachable or locked.

        A run's replies and outcome must reach the store; giving up would orphan a live container whose output a
        later reclaim replays. The lane simply waits, and gated's shutdown can still cancel the wait.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_exponential_jitter(multiplier=0.5, max=30.0),
            before_sleep=self._store_down,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                result: T = await self._offload(fn, *args, **kwargs)
            if attempt.retry_state.attempt_number > 1:
                logger.warning("store reachable again after %d attempts", attempt.retry_state.attempt_number)
        return result

    @staticmethod
    def _store_down(state: RetryCallState) -> None:
        if state.attempt_number == 1 or state.attempt_number % 10 == 0:
            error = state.outcome.exception() if state.outcome is not None else None
            logger.error(
                "store unavailable (%s); a run waits to record its work (attempt %d)", error, state.attempt_number
            )


def _judge(
    exited: Exited | None, outcome: _Outcome
) -> tuple[LaneResult, Literal["done", "new"], RunStatus, str | None]:
    """SPEC §9's outcome rules: (what the queue hears, the rows' status, the run's status, the error)."""
    if exited is None:
        return LaneResult.RETRY, "new", "error", "; ".join(outcome.errors) or "the run did not start"
    if exited.reason is ExitReason.STOPPED:
        return LaneResult.STOPPED, "done", "stopped", None
    error = _error_text(exited, outcome)
    if outcome.delivered:
        return LaneResult.OK, "done", "ok" if error is None else "error", error
    if error is None:
        return LaneResult.OK, "done", "ok", None  # exit 0 with nothing to say is the agent's choice
    timed_out = exited.reason in (ExitReason.IDLE_TIMEOUT, ExitReason.HARD_TIMEOUT)
    return LaneResult.RETRY, "new", "timeout" if timed_out else "error", error


def _error_text(exited: Exited, outcome: _Outcome) -> str | None:
    if exited.reason is not ExitReason.EXIT:
        return f"{exited.reason.value} (exit code {exited.code})"
    if exited.code != 0:
        tail = exited.stderr.strip().splitlines()[-1:] if exited.stderr else []
        return f"exit code {exited.code}" + (f": {tail[0][:200]}" if tail else "")
    return outcome.error_block


def _origin(rows: Sequence[Message]) -> str | None:
    return rows[0].forwarded_from if rows else None


def _prompt_message(row: Message) -> PromptMessage:
    platform = split_jid(row.chat_jid)[0]
    return PromptMessage(
        sender=row.sender_name or row.sender,
        sender_id=row.sender,
        time=row.timestamp,
        chat_id=row.forwarded_from or row.chat_jid,
        platform=split_jid(row.forwarded_from)[0] if row.forwarded_from else platform,
        text=row.agent_text,
        verb=row.verb,
        thread=row.routed_topic or row.topic,
        reply_to=row.reply_to_id or "",
    )


def _render_note(note: SystemMessage) -> str:
    return (
        f'<system origin="{xml_escape(note.origin)}" event="{xml_escape(note.event)}">{xml_escape(note.body)}</system>'
    )
