"""Session resets at run time (issue 16 items 2 and 3): expire sessions by policy, run memory flush turns, and say so.

Before each run of a lane (:meth:`SessionResets.before_run`, called by the lane runner once the group is read), for
the sessions of the lane (their chat is that of the oldest rows waiting, else of their latest run):

1. a session whose policy (:mod:`kanmon.gateway.session_policy`) says it expired is reset through
   :func:`reset_session`, the one place every reset goes through (``/new`` too); with ``session_reset_notice`` the
   chat is told first, under an id derived from the old session, so a crash and a second decision store no second
   notice;
2. memory flush turns still pending in the lane's topics (a policy's reset just now, an earlier ``/new``, one a
   crash left) run: the agent once more with the old session id and the flush prompt, bounded by the flush timeout;
   its replies go nowhere; a failure is logged and the reset stands (:mod:`kanmon.gateway.flush_turn`: a run in
   ``session_log`` whose usage counts, stopped by ``/stop``, claimed before it starts so that one a crash
   interrupted is closed, never run a second time).

A chat that never speaks again is not forgotten: the expiry watcher (:mod:`kanmon.gateway.session_watch`) offers the
queue every lane :meth:`SessionResets.due` finds (an expired session, a pending flush), and such a run resets and
flushes and then, with no rows waiting, starts no agent. ``/new`` offers its lane at once when it leaves a flush.

The lane runs one run at a time, so no policy resets a session while its run is going (a run of another lane on the
same session, a forum thread and a web topic of one id, may be: a flush turn then waits for it to end, the claim says
``busy``); expiry counts from the session's stored ``updated_at`` (the end of its last run) and the injected clock.
The run that follows begins a fresh session, and its prompt carries :func:`reset_note`: an automatic reset reads
differently from ``/new`` (the seed's ``was_auto_reset`` and ``is_fresh_reset``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

from kanmon.clock import Clock
from kanmon.folders import split_jid
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.flush_turn import FlushTurns
from kanmon.gateway.heads import lane_of
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.prompt import render_note
from kanmon.gateway.session_policy import Flush, ResetPolicy, expiry, flush_for, policy_for
from kanmon.gateway.spec import RunDefaults
from kanmon.message_ids import derived_id
from kanmon.queue import Lane, lane_for
from kanmon.store import Group, LaneHead, Message, NewMessage, SessionChat, SessionReset, Store
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
    return derived_id("reset-", session_id)[:200]


class SessionResets:
    """Resets expired sessions and runs pending memory flush turns before a lane's run, and finds the lanes the
    expiry watcher must offer; see the module docstring."""

    def __init__(
        self,
        db: AsyncStore,
        flushes: FlushTurns,
        defaults: RunDefaults,
        clock: Clock,
        on_stored: Callable[[list[Message]], None],
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self._db, self.flushes, self._defaults, self._clock, self._on_stored = db, flushes, defaults, clock, on_stored
        self._hooks = hooks
        self._policy = ResetPolicy(
            mode=defaults.session_reset,
            idle=defaults.session_idle_expiry,
            hour=defaults.session_reset_hour,
            zone=defaults.timezone,
        )
        self._flush = Flush(defaults.flush_prompt, defaults.flush_timeout)

    def applies(self, group: Group) -> bool:
        """Whether ``group`` resets sessions by policy or flushes memory at all (else no query is made)."""
        config = group.container_config
        policy = policy_for(config, "", self._policy)
        auto = policy.mode != "none" and (policy.mode != "idle" or policy.idle > 0)
        return auto or bool(config.get("session_reset_platforms")) or flush_for(config, self._flush) is not None

    async def before_run(self, group: Group, lane: Lane) -> list[LaneHead] | None:
        """Reset the lane's expired sessions, then run its pending flush turns (both before its run takes a batch).

        Returns the lane's waiting streams as read before the resets, held chats' included (``None`` when the group
        has no policy and nothing was read): a lane the expiry watcher offered may have none, and the runner starts
        no agent for them without a read of its own.
        """
        if not self.applies(group):
            return None
        flush = flush_for(group.container_config, self._flush)
        heads = [h for h in await self._db.retrying(self._db.store.lane_heads, lane.folder) if lane_of(h) == lane]
        chats = {head.topic: head.forwarded_from or head.chat_jid for head in reversed(heads)}  # oldest stream's
        for session in await self._db.retrying(self._db.store.session_chats, lane.folder):
            jid = chats.get(session.topic)  # in the lane already: its rows are
            if jid is None and session.chat_jid is not None:
                in_lane = lane_for(lane.folder, session.chat_jid, session.topic) == lane
                jid = session.chat_jid if in_lane else None
            if jid is not None:
                await self._expire(group, session, jid, flush is not None)
        if flush is not None:
            for reset in await self._db.retrying(self._db.store.pending_flushes, lane.folder):
                if lane_for(reset.group_folder, reset.chat_jid, reset.topic) == lane:
                    await self.flushes.run(group, lane, reset, flush)
        return heads

    async def due(self, groups: Iterable[Group]) -> set[Lane]:
        """The lanes of ``groups`` with a session their policy expired or a memory flush pending (the expiry
        watcher offers them to the queue; :meth:`before_run` does the work): two reads for all groups."""
        applying = {group.folder: group for group in groups if self.applies(group)}
        if not applying:
            return set()
        now, lanes = self._clock.now(), set[Lane]()
        for session in await self._db.retrying(self._db.store.session_chats, *applying):
            if session.chat_jid is None:
                continue  # set by hand, no run recorded: its chat (lane, platform) is known only when it speaks
            config = applying[session.group_folder].container_config
            policy = policy_for(config, split_jid(session.chat_jid)[0], self._policy)
            if policy.mode != "none" and expiry(policy, session.updated_at, now) is not None:
                lanes.add(lane_for(session.group_folder, session.chat_jid, session.topic))
        flushing = [folder for folder, group in applying.items() if flush_for(group.container_config, self._flush)]
        if flushing:
            for reset in await self._db.retrying(self._db.store.pending_flushes, *flushing):
                lanes.add(lane_for(reset.group_folder, reset.chat_jid, reset.topic))
        return lanes

    async def _expire(self, group: Group, session: SessionChat, jid: str, flush: bool) -> None:
        policy = policy_for(group.container_config, split_jid(jid)[0], self._policy)
        if policy.mode == "none":
            return
        now = self._clock.now()
        expired = expiry(policy, session.updated_at, now)
        if expired is None:
            return
        if policy.notice:
            notice = NewMessage(
                chat_jid=jid, id=notice_id(session.session_id), content=f"Session reset: {expired.detail}.",
                direction="out", origin=GATEWAY_ORIGIN, topic=session.topic, delivered=read_from_store(jid),
            )  # fmt: skip
            self._on_stored(await self._db.retrying(self._db.store.record_replies, [notice], now=now))
        await self._db.retrying(
            reset_session, self._db.store, group.folder, session.topic, chat_jid=jid, reason=expired.reason,
            detail=expired.detail, flush=flush, now=now, hooks=self._hooks,
        )  # fmt: skip
