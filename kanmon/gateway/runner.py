"""Runs lanes for the queue (SPEC §8–§10): start the agent, take the batch, record the replies, apply the outcome.

The :class:`~kanmon.queue.GroupQueue` calls :meth:`LaneRunner.run_lane` when the lane's turn comes. A run:

1. takes the group from the loop's cached configuration (a retry reads it afresh) and, unless its daily budget is spent
   (:mod:`kanmon.gateway.budget`), resets the sessions its policy expired and runs pending memory flush turns
   (:mod:`kanmon.gateway.session_reset`), then starts its agent with its input left open (:mod:`.starter`); where
   the lane's waiting streams were read anyway (a session policy) or a follow-up turn
   (:meth:`~kanmon.queue.GroupQueue.rerun`) reads them, only if one the impulse gate is not holding waits;
2. begins in **one** transaction (:meth:`~kanmon.store.Store.begin_runs`, shared by lanes starting together): takes
   the lane's oldest stream the impulse gate is not holding, up to ``batch_limit`` rows, records the run
   (``starting``), flushes the group's system messages and resolves the session (after a reset, a fresh one);
3. feeds the agent its input document and follows it (:mod:`kanmon.gateway.watch`), storing replies as they stream,
   a few transactions a second at most (:mod:`kanmon.gateway.recorder`);
4. ends in **one** transaction (:meth:`~kanmon.store.Store.finish_runs`, shared by lanes ending together): the replies
   not stored yet, the rows, the session, the run and the chat's cursor, by SPEC §9's table
   (:mod:`kanmon.gateway.outcome`); only then is the container removed, in the background (:class:`.starter.Removals`).

Runs a previous gated left in flight are reclaimed (:mod:`kanmon.gateway.reclaim`) and end through the same steps 3
and 4. A runtime that cannot be reached starts nothing: the lane is ``DEFERRED`` and tried again later without using
up an attempt, and :attr:`LaneRunner.unavailable` says why for ``/readyz``. A store fenced by another gated ends a
run's bookkeeping at once and leaves its container to that gated.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from kanmon.clock import Clock, SystemClock
from kanmon.container.events import Exited, ExitReason
from kanmon.container.handle import RunHandle
from kanmon.gateway.actions import AgentActions
from kanmon.gateway.budget import DailyBudget
from kanmon.gateway.deadletter import DEAD_LETTER_TEXT, dead_letter_end, told_dead
from kanmon.gateway.flush_turn import FlushTurns
from kanmon.gateway.gate import ImpulseGate
from kanmon.gateway.heads import lane_of
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.inbox import Inbox
from kanmon.gateway.lane_runs import Begun, LaneRuns, Session, held_elsewhere
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.outcome import Ending, Outcome, bare_end, judge
from kanmon.gateway.prompt import Batch, input_document, notes_of, peek_batch, redactor
from kanmon.gateway.reclaim import Reclaimer, settled_end
from kanmon.gateway.recorder import ReplyRecorder
from kanmon.gateway.registry import Registry
from kanmon.gateway.session_reset import SessionResets, reset_note
from kanmon.gateway.spec import RunDefaults, runtime_name
from kanmon.gateway.starter import Removals, RunStarter, Runtimes, Started, release
from kanmon.gateway.typing import TypingSignal
from kanmon.gateway.upstreams import CredentialGrants
from kanmon.gateway.usage import UsageMetrics, run_usage
from kanmon.gateway.watch import Collect, Watched, watch
from kanmon.logcontext import bound
from kanmon.queue import Lane, LaneResult, lane_for
from kanmon.store import LaneHead, Message, Run, RunBegin, RunDraft, RunEnd, RunEnded, RunStart, StoreFenced
from kanmon.store.aio import AsyncStore, GroupCommit

__all__ = ["DEAD_LETTER_TEXT", "LaneRunner", "Runtimes"]

logger = logging.getLogger(__name__)


class LaneRunner:
    """Runs lanes for the queue: batches in, replies and outcomes out, all through the store."""

    def __init__(
        self,
        db: AsyncStore,
        runtimes: Runtimes,
        defaults: RunDefaults,
        *,
        registry: Registry,
        metrics: GatewayMetrics,
        gate: ImpulseGate | None = None,  # what the impulse gate holds; told what each run took (SPEC §7)
        is_rerun: Callable[[Lane], bool] = lambda lane: False,  # GroupQueue.rerun
        on_stored: Callable[[list[Message]], None] = lambda rows: None,
        on_ended: Callable[[str, str], None] = lambda jid, answered: None,  # a run of a chat ended, answering a chat
        requeue: Callable[[Lane], None] = lambda lane: None,
        clock: Clock | None = None,
        inbox: Inbox | None = None,  # receives the batch's attachments before the prompt is written
        collect: Collect | None = None,  # the files outputs list, into the media store
        typing: TypingSignal | None = None,  # told when a run works on a chat topic (kanmon.gateway.typing)
        credentials: CredentialGrants | None = None,  # runs' proxy URLs and tokens per upstream (issue 19)
        on_tasks: Callable[[], None] = lambda: None,  # an agent action created or cancelled a task (issue 15)
        hooks: Hooks = NO_HOOKS,  # run starting/finished, session reset, dead letter (issue 16 item 6)
    ) -> None:
        self._db, self._runtimes, self._defaults = db, runtimes, defaults
        self._registry, self._metrics, self._is_rerun, self._gate = registry, metrics, is_rerun, gate or ImpulseGate()
        self._on_stored, self._on_ended = on_stored, on_ended
        self._requeue, self._inbox, self._collect, self._typing = requeue, inbox, collect, typing
        self._clock: Clock = clock or SystemClock()
        self._act = AgentActions(
            db, clock=self._clock, collect=collect, on_stored=on_stored, zone=defaults.timezone, on_tasks=on_tasks
        )  # issue 15
        self._lanes: dict[Lane, LaneRuns] = {}
        self._budget, self._usage = DailyBudget(db, defaults.timezone, self._clock, on_stored), UsageMetrics(metrics)
        store = db.store
        self._begins: GroupCommit[RunBegin, RunStart | None] = GroupCommit(
            db, lambda items: store.begin_runs(items, now=self._clock.now()), name="begin"
        )
        self._ends: GroupCommit[RunEnd, RunEnded] = GroupCommit(
            db, lambda items: store.finish_runs(items, now=self._clock.now()), name="end"
        )
        self.reclaimer = Reclaimer(db, runtimes, defaults.instance, live=self.live_runs)
        self._credentials, self._hooks = credentials, hooks
        self._starter = RunStarter(
            runtimes, defaults, clock=self._clock, reclaimer=self.reclaimer, credentials=credentials, hooks=hooks
        )
        flushes = FlushTurns(db, self._starter, defaults, self._clock, self._usage, credentials)
        #: session resets and memory flush turns (issue 16 items 2, 3); the expiry watcher asks it for due lanes
        self.resets = SessionResets(db, flushes, defaults, self._clock, on_stored, hooks)
        #: runtimes that could not be reached, with the reason (cleared when one answers again)
        self.unavailable = self.reclaimer.unavailable
        self.removals = Removals()  #: finished runs' containers being removed (awaited at shutdown)

    # ------------------------------------------------------------------------------------------------ queue hooks
    async def run_lane(self, lane: Lane) -> LaneResult:
        """Run the lane's next batch and say how it ended; a lane with nothing waiting is simply OK."""
        state = self._lanes.setdefault(lane, LaneRuns())
        state.active = True
        try:
            if (orphan := state.orphan) is not None:
                with bound(run_id=orphan.id, chat=orphan.chat_jid):
                    return await self._resume(lane, state, orphan)
            return await self._run_next(lane, state)
        except StoreFenced as exc:
            logger.error("%s; its run is left to the gated that holds the store now", exc)
            return LaneResult.DEFERRED
        except Exception as exc:
            if state.begun is None:
                raise  # nothing in flight: the queue counts a failure and retries
            return await self._fault(lane, state, state.begun, exc)
        finally:
            state.stop_asked = state.active = False  # a /stop is for the run it arrived during, never the next one
            state.handle = state.begun = None  # its run ended (or is the orphan to resume: it holds the session)
            if state.idle:
                self._lanes.pop(lane, None)

    async def dead_letter(self, lane: Lane) -> None:
        """Give up on the lane's failed batch: rows dead, cursor past them, session evicted, one apology."""
        state = self._lanes.get(lane)
        batch = state.failed if state is not None else None
        if state is not None:
            state.failed = None
            if state.idle:
                self._lanes.pop(lane, None)
        batch = batch or await peek_batch(self._db, lane, self._defaults.batch_limit)
        if batch is not None:
            ended = await self._ends(dead_letter_end(batch))
            self._on_stored(ended.stored)
            told_dead(batch, ended, self._metrics, self._hooks)

    async def reclaim(self) -> list[Lane]:
        """Take over the runs a previous gated left in flight; returns their lanes (to enqueue first)."""
        used = {runtime_name(group, self._defaults) for group in self._registry.groups.values()}
        orphans = await self.reclaimer.reclaim(used)
        for run in orphans:
            lane = lane_for(run.group_folder, run.chat_jid, run.topic)
            self._lanes.setdefault(lane, LaneRuns()).orphan = run
        return [lane for lane, state in self._lanes.items() if state.orphan is not None]

    async def stop(self, lane: Lane) -> None:
        """Stop the lane's running agent (``/stop``); the queue records the run as stopped."""
        if await self.resets.flushes.stop(lane):
            return  # a memory flush turn was running: it is what /stop stops
        state = self._lanes.get(lane)
        if state is None or not state.active:
            return  # no run of the lane is starting or running (its batch is being dead-lettered, say): none to stop
        if state.handle is None:
            state.stop_asked = True  # still starting: stopped the moment its handle exists
        else:
            await state.handle.stop()

    def running(self) -> dict[Lane, str]:
        """Lanes with a live run, and the run ids."""
        return {lane: state.handle.run_id for lane, state in self._lanes.items() if state.handle is not None}

    def live_runs(self) -> set[str]:
        return (
            {state.handle.run_id for state in self._lanes.values() if state.handle is not None}
            | {state.orphan.id for state in self._lanes.values() if state.orphan is not None}
            | self.resets.flushes.live()
            | self._starter.starting
        )

    # ------------------------------------------------------------------------------------------------ a run
    async def _run_next(self, lane: Lane, state: LaneRuns) -> LaneResult:
        # the loop's cached configuration (a `gated group set` counts from its next tick, and new messages come with
        # one); a retry, which no tick precedes, and a group added since read the row (the fix an operator made counts)
        group = None if state.failed is not None else self._registry.groups.get(lane.folder)
        group = group or await self._db.retrying(self._db.store.get_group, lane.folder)
        if group is None:
            logger.error("the group is not registered; dead-lettering its rows")
            return LaneResult.DEAD
        if await self._budget.holds(group, lane):
            return LaneResult.OK  # nothing ran, no attempt used: the lane is offered again, and runs on the next day
        heads = await self.resets.before_run(group, lane)  # read only for a group with a session policy
        # asked for again while its last run started (did that take all?), or a session of the folder is another
        # lane's (is the one it would take?)
        held = held_elsewhere(self._lanes, lane, self.resets.flushes.holding())
        if heads is None and (self._is_rerun(lane) or held):
            heads = await self._db.retrying(self._db.store.lane_heads, lane.folder)
        if heads is not None and not any(self._runnable(lane, held, head) for head in heads):
            return LaneResult.OK  # nothing the impulse gate lets through waits (the rows taken, or only held): no agent
        started = await self._starter.start(group)
        if started is None:
            return LaneResult.DEFERRED  # its runtime cannot be reached: tried again later, no attempt used
        state.handle = handle = started.handle
        began, begun = started.began, False
        with bound(run_id=started.run_id):  # every line about this run from here on (the queue bound its lane)
            try:
                start = await self._begin(lane, started.run_id, started.runtime, handle)
                begun = start is not None
            finally:
                if not begun and handle is not None:
                    await release(handle)  # nothing to run after all (or the store failed us): no leftover
            if start is None:
                return LaneResult.OK
            state.begun = Begun(start.run, Batch(start.head, start.rows), handle, began)
            if handle is not None:
                self._metrics.container_start_seconds.observe(self._clock.monotonic() - began)
            with bound(chat=start.run.chat_jid):
                return await self._run(lane, state, start, handle, started)

    def _runnable(self, lane: Lane, held: frozenset[Session], head: LaneHead) -> bool:
        return (
            lane_of(head) == lane
            and self._gate.lets_through(head.chat_jid, head.first_seq)
            and (head.folder, head.topic) not in held  # another lane's run holds its session: the begin passes it over
        )

    async def _begin(self, lane: Lane, run_id: str, runtime_key: str, handle: RunHandle | None) -> RunStart | None:
        draft = RunDraft(
            id=run_id, instance=self._defaults.instance, runtime=runtime_key, started_at=self._clock.now(),
            container=handle.name if handle is not None else None,
            status="running" if handle is not None else "starting",
        )  # fmt: skip
        held = held_elsewhere(self._lanes, lane, self.resets.flushes.holding())  # copied on the loop now: the begin
        accept = functools.partial(self._runnable, lane, held)  # calls accept on the store's thread
        begin = RunBegin(draft=draft, folder=lane.folder, accept=accept, limit=self._defaults.batch_limit)
        start: RunStart | None = await self._begins(begin)
        if start is not None:
            self._gate.taken(start.head.chat_jid, [row.seq for row in start.rows])  # held rows it took: no wait
            if start.more:
                self._requeue(lane)  # the queue runs the lane once more, behind the lanes already waiting
        return start

    async def _run(
        self,
        lane: Lane,
        state: LaneRuns,
        start: RunStart,
        handle: RunHandle | None,
        started: Started,
    ) -> LaneResult:
        run, batch = start.run, Batch(start.head, start.rows)
        notes = notes_of(start.notes) + started.notes
        if start.reset is not None:
            notes.append(reset_note(start.reset))
        logger.info("run start", extra={"messages": len(batch.rows)})
        watched = Watched(session_id=start.session_id, problems=started.problems)
        if handle is not None:
            redact = await redactor(self._db, batch, self._defaults.privacy)  # PII redaction (issue 16 item 5)
            inbox = self._inbox
            files = await inbox.receive(batch.rows, run.group_folder, run.runtime, redact.text) if inbox else None
            document = input_document(
                batch, folder=run.group_folder, run_id=run.id, session_id=start.session_id, notes=notes,
                now=self._clock.now(), assistant_name=self._defaults.assistant_name, secrets=started.secrets,
                files=files, redact=redact,
            )  # fmt: skip
            handle.feed(document.to_bytes())
            if state.stop_asked:
                await handle.stop()
        return await self._follow(lane, state, run, batch, handle, watched, started.began)

    async def _resume(self, lane: Lane, state: LaneRuns, run: Run) -> LaneResult:
        resumed = await self.reclaimer.resume(run)
        if resumed is None:
            return LaneResult.DEFERRED
        handle, rows = resumed
        if not rows:  # its batch was settled meanwhile: close the run, nothing left to deliver (a fault: tried again)
            if handle is not None:
                await release(handle)
            await self._ends(settled_end(run))
            state.orphan = None
            return LaneResult.OK
        head = LaneHead(run.group_folder, run.chat_jid, run.topic, rows[0].forwarded_from, rows[0].seq, len(rows))
        watched, batch, began = Watched(session_id=run.session_id), Batch(head, rows), self._clock.monotonic()
        state.orphan, state.begun = None, Begun(run, batch, handle, began)  # its row is this run's
        if handle is None:
            return await self._finish(lane, state, run, batch, await self.reclaimer.gone(run), watched, began=began)
        logger.info("re-attached; replaying its output")
        state.handle = handle
        if state.stop_asked:  # a /stop came while it was being re-attached
            await handle.stop()
        return await self._follow(lane, state, run, batch, handle, watched, began)

    async def _follow(
        self,
        lane: Lane,
        state: LaneRuns,
        run: Run,
        batch: Batch,
        handle: RunHandle | None,
        watched: Watched,
        began: float,
    ) -> LaneResult:
        recorder = self._recorder()
        if handle is not None and not await watch(
            handle, batch, recorder, watched, clock=self._clock, collect=self._collect, typing=self._typing,
            act=self._act,
        ):  # fmt: skip
            await recorder.abandon()
            state.orphan = await self._db.retrying(self._db.store.get_run, run.id)  # re-attach when it answers
            self.reclaimer.mark_unavailable(run.runtime, "lost contact during a run")
            return LaneResult.DEFERRED
        result = await self._finish(lane, state, run, batch, watched.ending(recorder), watched, recorder, began=began)
        if handle is not None:
            self.removals.start(handle)  # the outcome is stored: the queue's slot need not wait for the engine
        return result

    async def _fault(self, lane: Lane, state: LaneRuns, begun: Begun, exc: Exception) -> LaneResult:
        """A fault of kanmon's own after ``begun`` took its batch: the agent released and the run ended as an error
        (its batch retried; with replies recorded, never run again), so its row does not hold the session for ever."""
        logger.error("kanmon failed during the run (%s); ending it", exc, exc_info=exc)
        if begun.handle is not None:
            await release(begun.handle)
        produced = await self._db.retrying(self._db.store.count_outputs, begun.run.id)
        killed = Exited(code=None, reason=ExitReason.KILLED)  # by kanmon: the table then goes by what it answered
        ending = Ending(exited=killed, produced=produced, problems=[f"kanmon failed during the run: {exc}"])
        watched = Watched(session_id=begun.run.session_id)  # the session it resumed
        return await self._finish(lane, state, begun.run, begun.batch, ending, watched, began=begun.began)

    def _recorder(self) -> ReplyRecorder:
        return ReplyRecorder(
            lambda replies: self._db.retrying(self._db.store.record_replies, replies, now=self._clock.now()),
            clock=self._clock,
            cap=self._defaults.max_replies,
            flush_after=self._defaults.reply_flush,
            first_flush_after=self._defaults.reply_first_flush,
            on_stored=self._on_stored,
        )

    async def _finish(
        self,
        lane: Lane,
        state: LaneRuns,
        run: Run,
        batch: Batch,
        ending: Ending,
        watched: Watched,
        recorder: ReplyRecorder | None = None,
        *,
        began: float,
    ) -> LaneResult:
        outcome, (stderr, stdout) = judge(ending), ending.log()
        unrecorded = await recorder.close() if recorder is not None else []
        group = self._registry.groups.get(run.group_folder)
        observed = self._credentials.observed(run.id) if self._credentials is not None else None  # its API's answers
        end = RunEnd(
            stderr=stderr, stdout=stdout,
            run_id=run.id, chat_jid=batch.head.chat_jid, seqs=batch.seqs, rows=outcome.rows,
            run_status=outcome.status, folder=batch.head.folder, topic=batch.head.topic,
            session_id=None if outcome.evict_session else watched.session_id, evict_session=outcome.evict_session,
            output_count=ending.produced, error=outcome.error, replies=unrecorded,
            usage=self._budget.usage(run, batch, run_usage(watched.usage, observed, watched.session_id), group),
        )  # fmt: skip
        ended = await self._end(end, outcome)
        state.begun = None  # its row is closed: a fault from here on is only logged
        self._on_stored(ended.stored)
        self._usage.count(ended.usage)
        self._on_ended(batch.head.chat_jid, batch.reply_jid)
        self._hooks.notify("run_finished", run=run, status=outcome.status, error=outcome.error, outputs=ending.produced)
        state.failed = batch if outcome.result is LaneResult.RETRY else None
        seconds = self._clock.monotonic() - began
        self._metrics.runs.labels(result=outcome.status, folder=self._metrics.folder(run.group_folder)).inc()
        self._metrics.run_seconds.observe(seconds)
        done = {"result": outcome.status, "duration": round(seconds, 3), "outputs": ending.produced}
        done["cursor"] = ended.cursor
        logger.info("run finish", extra=done | ({"error": outcome.error} if outcome.error else {}))
        return outcome.result

    async def _end(self, end: RunEnd, outcome: Outcome) -> RunEnded:
        """The run's last transaction; if kanmon cannot record it (for any reason but a fence: a value the store
        refuses, a fault of kanmon's own), it records at least the run's end and its rows' fate (:func:`bare_end`, with
        the replies, then without), so an answered run is never run again and its session_log row never stays
        ``running`` while gated lives."""
        *fallible, last = (end, bare_end(end, outcome), bare_end(end, outcome, replies=False))
        for attempt in fallible:
            try:
                return await self._ends(attempt)
            except StoreFenced:
                raise
            except Exception as exc:  # a fault of kanmon's own must not rerun an agent that answered
                logger.error("its outcome could not be recorded (%s); recording less", exc, exc_info=exc)
        return await self._ends(last)
