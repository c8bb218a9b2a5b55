"""The memory flush turn (issue 16 item 3): the agent once more, with the session about to be discarded.

A turn is a run in ``session_log`` like any other, without a batch (``message_count`` 0, ``first_seq`` NULL) and with
the old session's id. :meth:`FlushTurns.run`:

1. starts the agent (the group's runtime, bounded by the flush timeout instead of the group's own timeouts);
2. claims the flush and records the run in one transaction (:meth:`~kanmon.store.Store.claim_flush`); a claim stamped
   already is a flush a crash interrupted, so the agent is released unfed and the flush is closed: never run twice;
3. feeds it the flush prompt and follows it: outputs are counted and their usage kept; nothing reaches the chat;
4. ends in one transaction (:meth:`~kanmon.store.Store.finish_runs` with ``flush``): the run's status and log, its
   usage (charged to the group's day like any run's, so a budget sees it), the flush closed, the session untouched.

A failure is logged and the reset stands. ``/stop`` stops a turn like a run (:meth:`FlushTurns.stop`). A turn gated
stopped during is closed as interrupted by the next gated's reclaim, never run again.
"""

from __future__ import annotations

import logging

from kanmon.clock import Clock
from kanmon.container import AgentInput, ContainerError, PromptMessage, render_prompt
from kanmon.container.events import Exited, Output
from kanmon.container.handle import RunHandle
from kanmon.folders import split_jid
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.outcome import Ending, judge
from kanmon.gateway.prompt import render_note
from kanmon.gateway.reclaim import FLUSH_INTERRUPTED
from kanmon.gateway.session_policy import Flush
from kanmon.gateway.spec import RunDefaults
from kanmon.gateway.starter import RunStarter, Started, release
from kanmon.gateway.upstreams import CredentialGrants
from kanmon.gateway.usage import Reported, UsageMetrics, group_zone, note_usage, run_usage, usage_entries
from kanmon.queue import Lane
from kanmon.store import Group, Run, RunEnd, SessionReset
from kanmon.store.aio import AsyncStore

__all__ = ["FLUSH_INTERRUPTED", "FlushTurns"]

logger = logging.getLogger(__name__)


class FlushTurns:
    """Runs memory flush turns; see the module docstring."""

    def __init__(
        self,
        db: AsyncStore,
        starter: RunStarter,
        defaults: RunDefaults,
        clock: Clock,
        usage: UsageMetrics | None = None,
        credentials: CredentialGrants | None = None,
    ) -> None:
        self._db, self._starter, self._defaults, self._clock = db, starter, defaults, clock
        self._usage, self._credentials = usage, credentials
        #: the live turns by lane: their proxy tokens hold (:meth:`live`), ``/stop`` finds them
        self._handles: dict[Lane, RunHandle] = {}
        self._sessions: dict[Lane, tuple[str, str]] = {}  # the (folder, topic) whose old session each live turn has

    def live(self) -> set[str]:
        """The run ids of the turns going on."""
        return {handle.run_id for handle in self._handles.values()}

    def holding(self) -> dict[Lane, tuple[str, str]]:
        """The session ``(folder, topic)`` of each live turn, by lane (no run of another lane may begin on it)."""
        return dict(self._sessions)

    async def stop(self, lane: Lane) -> bool:
        """Stop the lane's turn (``/stop``); False when none is going on."""
        handle = self._handles.get(lane)
        if handle is None:
            return False
        await handle.stop()
        return True

    async def run(self, group: Group, lane: Lane, reset: SessionReset, flush: Flush) -> None:
        """Run the flush turn of ``reset`` (see the module docstring); never raises for the agent's failures."""
        folder, topic, session = reset.group_folder, reset.topic, reset.flush_session_id
        assert session is not None  # pending_flushes gives only resets with a flush to run
        started = await self._starter.start(group, run_timeout=flush.timeout)
        handle = started.handle if started is not None else None
        if started is None or handle is None:
            why = "its runtime cannot be reached" if started is None else "; ".join(started.problems)
            logger.error("memory flush folder=%s topic=%s did not start: %s; the reset stands", folder, topic, why)
            if started is not None:  # it would fail again: closed; an unreachable runtime is tried on the next run
                await self._db.retrying(self._db.store.end_flush, folder, topic, session_id=session)
            return
        run = Run(
            id=started.run_id, instance=self._defaults.instance, group_folder=folder, topic=topic,
            chat_jid=reset.chat_jid, session_id=reset.flush_session_id, runtime=started.runtime,
            container=handle.name, status="running", started_at=self._clock.now(),
        )  # fmt: skip
        try:
            claim = await self._db.retrying(
                self._db.store.claim_flush, folder, topic, session_id=session, now=run.started_at, run=run
            )
            if claim == "busy":  # a run of another lane resumes the old session now: not two agents on it at once
                logger.info("memory flush folder=%s topic=%s waits: a run holds the session", folder, topic)
                return  # pending still: the lane's next run, or the expiry watcher's next offer, tries again
            if claim == "closed":
                logger.warning(
                    "memory flush folder=%s topic=%s session=%s was interrupted (gated stopped during it) or replaced "
                    "by a newer reset's; not run twice", folder, topic, session,
                )  # fmt: skip
                await self._db.retrying(self._db.store.end_flush, folder, topic, session_id=session)
                return
            self._handles[lane], self._sessions[lane] = handle, (folder, topic)
            try:
                await self._follow(group, run, reset, flush, started, handle)
            finally:
                self._handles.pop(lane, None)
                self._sessions.pop(lane, None)
        finally:
            await release(handle)  # a removal that fails is logged and retried as a leftover, as after any run

    async def _follow(
        self, group: Group, run: Run, reset: SessionReset, flush: Flush, started: Started, handle: RunHandle
    ) -> None:
        now = self._clock.now()
        message = PromptMessage(
            sender=self._defaults.assistant_name, sender_id=GATEWAY_ORIGIN, time=now, chat_id=reset.chat_jid,
            platform=split_jid(reset.chat_jid)[0], text=flush.prompt, thread=reset.topic,
        )  # fmt: skip
        document = AgentInput(
            prompt=render_prompt([message], now=now, system=[_FLUSH_NOTE]),
            chat_jid=reset.chat_jid, group_folder=run.group_folder, run_id=run.id, session_id=reset.flush_session_id,
            topic=reset.topic, assistant_name=self._defaults.assistant_name, channel_name=split_jid(reset.chat_jid)[0],
            message_id=f"flush-{run.id}", sender=GATEWAY_ORIGIN, secrets=started.secrets,
        )  # fmt: skip
        outputs, exited, reported, problems = 0, None, list[Reported](), list[str]()
        try:
            handle.feed(document.to_bytes())
            async for event in handle:
                if isinstance(event, Output):
                    outputs += 1  # not delivered: the flush turn speaks to memory, not to the chat
                    note_usage(run.id, event, reported, reset.flush_session_id)
                elif isinstance(event, Exited):
                    exited = event
                    break
        except (ContainerError, OSError) as exc:
            logger.error("memory flush folder=%s topic=%s failed: %s; the reset stands", run.group_folder,
                         reset.topic, exc)  # fmt: skip
            problems.append(str(exc))
        ending = Ending(exited=exited, produced=outputs, problems=problems)
        outcome, (stderr, stdout) = judge(ending), ending.log()
        observed = self._credentials.observed(run.id) if self._credentials is not None else None
        zone = group_zone(group.container_config, self._defaults.timezone)
        usage = usage_entries(
            run, run_usage(reported, observed, reset.flush_session_id), chat_jid=reset.chat_jid, topic=reset.topic,
            zone=zone, now=self._clock.now(),
        )  # fmt: skip
        end = RunEnd(
            run_id=run.id, chat_jid=reset.chat_jid, seqs=[], rows="done", run_status=outcome.status,
            folder=run.group_folder, topic=reset.topic, output_count=outputs, error=outcome.error, usage=usage,
            stderr=stderr, stdout=stdout, flush_session=reset.flush_session_id,
        )  # fmt: skip
        ended = await self._db.retrying(self._db.store.finish_runs, [end], now=self._clock.now())
        if self._usage is not None:
            self._usage.count(ended[0].usage)
        logger.info(
            "memory flush folder=%s topic=%s session=%s run=%s ended=%s outputs=%d (not delivered)",
            run.group_folder, reset.topic, reset.flush_session_id, run.id,
            exited.reason.value if exited is not None else "no exit", outputs,
        )  # fmt: skip


_FLUSH_NOTE = render_note(GATEWAY_ORIGIN, "memory_flush", "This turn's replies are not delivered to the chat.")
