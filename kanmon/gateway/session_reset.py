"""Session resets at run time (issue 16 items 2 and 3): expire sessions by policy, run memory flush turns, and say so.

Before each run of a lane (:meth:`SessionResets.before_run`, called by the lane runner once the group is read), for
the topics with rows waiting in the lane:

1. a session whose policy (:mod:`kanmon.gateway.session_policy`) says it expired is reset through
   :func:`reset_session`, the one place every reset goes through (``/new`` too); with ``session_reset_notice`` the
   chat is told first, under an id derived from the old session, so a crash and a second decision store no second
   notice;
2. memory flush turns still pending in the lane's topics (a policy's reset just now, an earlier ``/new``, one a
   crash left) run: the agent once more with the old session id and the flush prompt, bounded by the flush timeout;
   its replies go nowhere; a failure is logged and the reset stands. A flush is claimed in the store before it
   starts, so one a crash interrupted is closed, never run a second time.

The lane runs one run at a time, so no session is reset while its run is going; expiry counts from the session's
stored ``updated_at`` (the end of its last run) and the injected clock. The run that follows begins a fresh session,
and its prompt carries :func:`reset_note`: an automatic reset reads differently from ``/new`` (the seed's
``was_auto_reset`` and ``is_fresh_reset``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from kanmon.clock import Clock
from kanmon.container import AgentInput, PromptMessage, render_prompt
from kanmon.container.events import Exited, Output
from kanmon.errors import KanmonError
from kanmon.folders import split_jid
from kanmon.gateway.context import GATEWAY_ORIGIN, read_from_store
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.prompt import render_note
from kanmon.gateway.session_policy import Flush, ResetPolicy, expiry, flush_for, policy_for
from kanmon.gateway.spec import RunDefaults
from kanmon.gateway.starter import RunStarter
from kanmon.queue import Lane, lane_for
from kanmon.store import Group, LaneHead, Message, NewMessage, SessionReset, Store
from kanmon.store.aio import AsyncStore
from kanmon.store.resets import ResetReason

__all__ = ["SessionResets", "notice_id", "reset_note", "reset_session"]

logger = logging.getLogger(__name__)


def reset_session(
    store: Store,
    folder: str,
    topic: str,
    *,
    chat_jid: str,
    reason: ResetReason,
    detail: str,
    flush: bool,
    now: dt.datetime,
    hooks: Hooks = NO_HOOKS,
) -> SessionReset:
    """Reset the session of ``(folder, topic)``: every reset, a policy's or ``/new``'s, goes through here (one store
    transaction, one log line, then the ``session_reset`` hook). ``flush``: keep the old session for the group's
    memory flush turn."""
    reset = store.reset_session(folder, topic, chat_jid=chat_jid, reason=reason, detail=detail, flush=flush, now=now)
    logger.info(
        "session reset folder=%s topic=%s chat=%s reason=%s flush=%s",
        folder, topic, chat_jid, reason, "pending" if reset.flush_session_id else "none",
    )  # fmt: skip
    hooks.notify("session_reset", folder=folder, topic=topic, chat_jid=chat_jid, reason=reason)
    return reset


def reset_note(reset: SessionReset) -> str:
    """The system message the first prompt after ``reset`` carries: ``auto_reset`` after a policy's, ``fresh_reset``
    after ``/new``."""
    if reset.automatic:
        body = (
            f"The previous session was reset automatically ({reset.detail}). This is a fresh conversation: earlier "
            "messages are not in your context; say so rather than guess if the user refers to them."
        )
        return render_note(GATEWAY_ORIGIN, "auto_reset", body)
    body = "The user started a new session with /new. Earlier messages are deliberately not part of this one."
    return render_note(GATEWAY_ORIGIN, "fresh_reset", body)


def notice_id(session_id: str) -> str:
    """The message id of the chat notice of an automatic reset of ``session_id``: one per session ever."""
    return f"reset-{session_id}"[:200]


class SessionResets:
    """Resets expired sessions and runs pending memory flush turns before a lane's run; see the module docstring."""

    def __init__(
        self,
        db: AsyncStore,
        starter: RunStarter,
        defaults: RunDefaults,
        clock: Clock,
        on_stored: Callable[[list[Message]], None],
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self._db, self._starter, self._defaults, self._clock, self._on_stored = db, starter, defaults, clock, on_stored
        self._hooks = hooks
        self._policy = ResetPolicy(
            mode=defaults.session_reset,
            idle=defaults.session_idle_expiry,
            hour=defaults.session_reset_hour,
            zone=defaults.timezone,
        )
        self._flush = Flush(defaults.flush_prompt, defaults.flush_timeout)
        #: run ids of the flush turns going on: live runs, whose credential proxy tokens hold
        self.live: set[str] = set()

    def applies(self, group: Group) -> bool:
        """Whether ``group`` resets sessions by policy or flushes memory at all (else no query is made)."""
        config = group.container_config
        policy = policy_for(config, "", self._policy)
        auto = policy.mode != "none" and (policy.mode != "idle" or policy.idle > 0)
        return auto or bool(config.get("session_reset_platforms")) or flush_for(config, self._flush) is not None

    async def before_run(self, group: Group, lane: Lane) -> None:
        """Reset the lane's expired sessions, then run its pending flush turns (both before its run takes a batch)."""
        if not self.applies(group):
            return
        flush = flush_for(group.container_config, self._flush)
        heads = [h for h in await self._db.retrying(self._db.store.lane_heads, lane.folder) if _in(lane, h)]
        for head in {head.topic: head for head in reversed(heads)}.values():  # the oldest stream per topic
            await self._expire(group, head, flush is not None)
        if flush is None:
            return
        for reset in await self._db.retrying(self._db.store.pending_flushes, lane.folder):
            if lane_for(reset.group_folder, reset.chat_jid, reset.topic) == lane:
                await self._flush_turn(group, lane, reset, flush)

    async def _expire(self, group: Group, head: LaneHead, flush: bool) -> None:
        jid = head.forwarded_from or head.chat_jid
        policy = policy_for(group.container_config, split_jid(jid)[0], self._policy)
        if policy.mode == "none":
            return
        session = await self._db.retrying(self._db.store.get_session, group.folder, head.topic)
        now = self._clock.now()
        expired = expiry(policy, session.updated_at, now) if session is not None else None
        if session is None or expired is None:
            return
        if policy.notice:
            notice = NewMessage(
                chat_jid=jid, id=notice_id(session.session_id), content=f"Session reset: {expired.detail}.",
                direction="out", origin=GATEWAY_ORIGIN, topic=head.topic, delivered=read_from_store(jid),
            )  # fmt: skip
            self._on_stored(await self._db.retrying(self._db.store.record_replies, [notice], now=now))
        await self._db.retrying(
            reset_session, self._db.store, group.folder, head.topic, chat_jid=jid, reason=expired.reason,
            detail=expired.detail, flush=flush, now=now, hooks=self._hooks,
        )  # fmt: skip

    async def _flush_turn(self, group: Group, lane: Lane, reset: SessionReset, flush: Flush) -> None:
        store, folder, topic = self._db.store, reset.group_folder, reset.topic
        if not await self._db.retrying(store.claim_flush, folder, topic, now=self._clock.now()):
            logger.warning(
                "memory flush folder=%s topic=%s session=%s was interrupted (gated stopped during it); not run twice",
                folder, topic, reset.flush_session_id,
            )  # fmt: skip
        else:
            try:
                await self._run(group, lane, reset, flush)
            except (KanmonError, OSError) as exc:
                logger.error("memory flush folder=%s topic=%s failed: %s; the reset stands", folder, topic, exc)
        await self._db.retrying(store.end_flush, folder, topic)

    async def _run(self, group: Group, lane: Lane, reset: SessionReset, flush: Flush) -> None:
        started = await self._starter.start(group, run_timeout=flush.timeout)
        if started is None or started.handle is None:
            why = "its runtime cannot be reached" if started is None else "; ".join(started.problems)
            logger.error("memory flush folder=%s topic=%s did not start: %s; the reset stands", group.folder,
                         reset.topic, why)  # fmt: skip
            return
        handle, now = started.handle, self._clock.now()
        message = PromptMessage(
            sender=self._defaults.assistant_name, sender_id=GATEWAY_ORIGIN, time=now, chat_id=reset.chat_jid,
            platform=split_jid(reset.chat_jid)[0], text=flush.prompt, thread=reset.topic,
        )  # fmt: skip
        document = AgentInput(
            prompt=render_prompt([message], now=now, system=[_FLUSH_NOTE]),
            chat_jid=reset.chat_jid, group_folder=group.folder, run_id=started.run_id,
            session_id=reset.flush_session_id, topic=reset.topic, assistant_name=self._defaults.assistant_name,
            channel_name=split_jid(reset.chat_jid)[0], message_id=f"flush-{started.run_id}", sender=GATEWAY_ORIGIN,
            secrets=started.secrets,
        )  # fmt: skip
        outputs, ending = 0, "no exit"
        self.live.add(started.run_id)
        try:
            handle.feed(document.to_bytes())
            async for event in handle:
                if isinstance(event, Output):
                    outputs += 1  # not delivered: the flush turn speaks to memory, not to the chat
                elif isinstance(event, Exited):
                    ending = event.reason.value
                    break
        finally:
            self.live.discard(started.run_id)
            await handle.close()
        logger.info(
            "memory flush folder=%s topic=%s session=%s run=%s ended=%s outputs=%d (not delivered)",
            group.folder, reset.topic, reset.flush_session_id, started.run_id, ending, outputs,
        )  # fmt: skip


_FLUSH_NOTE = render_note(GATEWAY_ORIGIN, "memory_flush", "This turn's replies are not delivered to the chat.")


def _in(lane: Lane, head: LaneHead) -> bool:
    return lane_for(head.folder, head.chat_jid, head.topic) == lane
