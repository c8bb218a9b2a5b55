"""One tick's store work, on a store thread: read new rows, decide each, record everything in one transaction.

The :class:`~kanmon.gateway.loop.MessageLoop` hands :meth:`Dispatcher.tick` to the store facade, so the whole tick's
blocking work is one hop off the event loop:

1. refresh the cached configuration if it changed (:class:`~kanmon.gateway.registry.Registry`: one indexed read);
2. read up to ``poll_batch`` rows after the poll cursor, in seq order;
3. send **every** inbound row through owner resolution, sender authorisation and the four layers, in order
   (commands and sticky settings take effect here, each before the next row is looked at); rows kanmon wrote
   itself are never routed again; refused rows are skipped (:mod:`kanmon.gateway.auth`);
4. record each row's decision, every row the tick writes (command answers, ``local:`` delegation copies, ``daemon:``
   outbox rows), the chats' new sticky settings and the new poll cursor in **one** transaction. A crash before it
   commits re-reads the batch as it was: the rows the tick writes carry derived ids, routing is recorded only once,
   and no sticky setting is stored yet for an earlier row of it to follow. A command that writes commits its change
   at once (``/approve``'s route, ``/new``'s reset), so when one is about to run, the rows before it are recorded
   first (:attr:`LayerContext.before_write`): a batch read again starts at the command, and no earlier row is decided
   by its change. A row the store shows decided already is offered to the gate again, never decided again.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace

from kanmon.clock import Clock
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN, LayerContext, nothing_batched
from kanmon.gateway.decisions import Builtin, Consumed, Daemon, Drop, Forward, Ignored, QueueControl, Refused, Unowned
from kanmon.gateway.delegation import delegation_id, delegation_jid
from kanmon.gateway.held import stored_impulse
from kanmon.gateway.hooks import NO_HOOKS, Hooks, Retarget
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.onboarding import note_unowned
from kanmon.gateway.owner import resolve_owner
from kanmon.gateway.pairing import on_refused
from kanmon.gateway.pipeline import process_message
from kanmon.gateway.registry import Registry
from kanmon.logcontext import bound
from kanmon.message_ids import derived_id
from kanmon.queue import Lane, lane_for
from kanmon.router import ImpulseConfig
from kanmon.store import Dispatch, Message, NewMessage, Store

__all__ = ["DAEMON_PREFIX", "Admitted", "Dispatcher", "TickWork", "daemon_jid", "delegation_jid"]

#: The chats that are the outboxes of daemon targets (:func:`daemon_jid`).
DAEMON_PREFIX = "daemon:"

logger = logging.getLogger(__name__)


def daemon_jid(name: str) -> str:
    """The outbox of the daemon target ``name``: rows there are POSTed to the daemon by its deliverer."""
    return f"{DAEMON_PREFIX}{name}"


@dataclass(frozen=True, slots=True)
class Admitted:
    """A forwarded row on its way to the gate: its chat, verb and seq, the lane it runs in, its impulse settings."""

    chat_jid: str
    verb: str
    seq: int
    lane: Lane
    impulse: ImpulseConfig


@dataclass(slots=True)
class TickWork:
    """What one tick read and decided: the rows, those admitted to the gate, and the rows it stored itself."""

    rows: list[Message] = field(default_factory=list)
    admitted: list[Admitted] = field(default_factory=list)
    stored: list[Message] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class DispatchConfig:
    """The knobs :class:`Dispatcher` needs (from the loop's configuration)."""

    poll_batch: int
    bot_names: frozenset[str]
    impulse: ImpulseConfig
    onboarding: bool
    auth: AuthConfig = field(default_factory=AuthConfig)
    timezone: str = "UTC"  # scheduler.timezone: the days of groups without a zone of their own (/status usage)


class Dispatcher:
    """Decides and records ticks; every method blocks (call it on a store thread)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        config: DispatchConfig,
        *,
        metrics: GatewayMetrics,
        clock: Clock,
        rng: random.Random | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self._hooks = hooks
        self._rng = rng  # pairing codes: None = secrets.SystemRandom (tests inject a seeded one)
        self._store = store
        self._registry = registry
        self._config = config
        self._metrics = metrics
        self._clock = clock

    def tick(self, cursor: int, queue: QueueControl) -> TickWork:
        """Steps 1–4 of the module docstring for the rows after ``cursor``."""
        self._registry.refresh()
        rows = self._store.new_messages(cursor, self._config.poll_batch)
        work = TickWork(rows=rows)
        if not rows:
            return work
        for row in rows:
            self._hooks.notify("message_stored", message=row)
        ctx = LayerContext(
            self._store,
            queue,
            self._config.bot_names,
            impulse=self._config.impulse,
            registry=self._registry,
            outbox=[],
            auth=self._config.auth,
            clock=self._clock,
            timezone=self._config.timezone,
            hooks=self._hooks,
        )
        ctx.know_chats([row.chat_jid for row in rows if row.direction == "in"])
        dispatches: list[Dispatch] = []
        previous, recorded = 0, 0  # the seq of the row before this one, and the last seq recorded (0: none)

        def before_write() -> None:
            # A command is about to commit its change at once (a route, a reset): the rows before it are recorded
            # first, so a tick that fails after it is read again from the command on, not decided by its change.
            nonlocal recorded
            if previous > recorded:
                work.stored.extend(self._record(dispatches, previous, ctx))
                dispatches.clear()
                recorded = previous

        ctx.before_write = before_write
        try:
            for row in rows:
                self._take(row, ctx, work, dispatches)
                previous = row.seq
            work.stored += self._record(dispatches, rows[-1].seq, ctx)
        finally:
            # the closure holds the context, which holds the closure: break the cycle, or each tick's rows and caches
            # wait for the cyclic garbage collector (gated's RSS grew by 6 MiB under bench/rss.py)
            ctx.before_write = nothing_batched
        return work

    def _take(self, row: Message, ctx: LayerContext, work: TickWork, dispatches: list[Dispatch]) -> None:
        """Decide ``row`` (step 3) into ``dispatches`` and ``work.admitted``."""
        if row.direction == "in" and (row.status != "new" or row.routed_folder is not None):
            self._readmit(row, ctx, work.admitted)  # decided before a command of a tick that then failed
            return
        if row.direction == "in":
            self._metrics.messages_ingested.labels(platform=row.chat_jid.partition(":")[0]).inc()
        with bound(chat=row.chat_jid):  # every line about deciding this row names its chat (issue 18 item 6)
            dispatch = self._decide(row, ctx, work.admitted)
        if dispatch is not None:
            dispatches.append(dispatch)

    @staticmethod
    def _readmit(row: Message, ctx: LayerContext, admitted: list[Admitted]) -> None:
        """A row decided already is never decided again (its effects, a delegation, would happen twice); one still
        waiting for its agent is offered to the gate again, as its route weighs it, since its first offer was lost."""
        if row.status == "new" and row.routed_folder is not None:
            lane = lane_for(row.routed_folder, row.chat_jid, row.routed_topic or "")
            impulse = stored_impulse(ctx, row.chat_jid, row.sender, row.verb)
            admitted.append(Admitted(row.chat_jid, row.verb, row.seq, lane, impulse))

    def _record(self, dispatches: list[Dispatch], last_seq: int, ctx: LayerContext) -> list[Message]:
        """Record ``dispatches``, the rows and settings the layers wrote, and the cursor; the context starts afresh."""
        assert ctx.outbox is not None
        outbox, steering, ctx.outbox, ctx.steering = ctx.outbox, ctx.steering, [], {}
        now = self._clock.now()
        return self._store.record_dispatch(dispatches, last_seq, outbox=outbox, steering=steering, now=now)

    def context(self, queue: QueueControl) -> LayerContext:
        """A layer context on the cached configuration (start-up recovery)."""
        return LayerContext(
            self._store,
            queue,
            impulse=self._config.impulse,
            registry=self._registry,
            auth=self._config.auth,
            clock=self._clock,
        )

    def _decide(self, row: Message, ctx: LayerContext, admitted: list[Admitted]) -> Dispatch | None:
        decision = process_message(row, ctx)
        if isinstance(decision, Ignored):
            return None
        if isinstance(decision, Unowned):
            logger.debug("skipped seq=%d: %s", row.seq, decision.why)
            if self._config.onboarding:
                note_unowned(row, ctx)  # the row stays skipped; approval answers a copy of the newest
            return Dispatch(row.seq, "skipped")
        if isinstance(decision, Refused):  # never routed; a direct chat may be offered a pairing code, once
            self._metrics.messages_refused.labels(platform=row.chat_jid.partition(":")[0]).inc()
            on_refused(self._store, decision, self._config.auth, self._clock.now(), self._rng)
            return Dispatch(row.seq, "skipped")
        if isinstance(decision, Consumed | Drop):
            return Dispatch(row.seq, "done")
        if isinstance(decision, Builtin):
            self._builtin(row, ctx, decision.name)
            return Dispatch(row.seq, "done")
        if isinstance(decision, Daemon):
            ctx.write(_to_daemon(decision.message, decision.name))  # `/new text` gives on only its text
            return Dispatch(row.seq, "done")
        hooked = self._hooked(row, ctx, decision)
        if hooked is None:
            return Dispatch(row.seq, "done")
        if self._delegates(row, ctx, hooked):  # settled here; the folder names the inbox its copy waits in
            return Dispatch(row.seq, "done", hooked.folder, hooked.topic)
        lane = lane_for(hooked.folder, row.chat_jid, hooked.topic)
        admitted.append(Admitted(row.chat_jid, row.verb, row.seq, lane, hooked.impulse))
        return Dispatch(row.seq, "new", hooked.folder, hooked.topic, hooked.content)

    def _hooked(self, row: Message, ctx: LayerContext, decision: Forward) -> Forward | None:
        """``decision`` as the ``message_routed`` hooks leave it: dropped (None), re-targeted, or as it was."""

        def known(folder: str) -> bool:
            return ctx.group(folder) is not None

        # the row as it was routed: for `/new text`, its text (a hook keeping `#private …` away must see that text)
        change = self._hooks.route(decision.message, decision.folder, decision.topic, known=known)
        if isinstance(change, Retarget):
            return replace(decision, folder=change.folder, topic=change.topic or "")
        return decision if change is None else None

    @staticmethod
    def _delegates(row: Message, ctx: LayerContext, decision: Forward) -> bool:
        """A row forwarded to a folder other than its chat's owner goes to that folder's ``local:`` inbox."""
        owner = resolve_owner(ctx, row.chat_jid).folder
        if decision.folder == owner:
            return False
        origin = row.forwarded_from or row.chat_jid  # a delegate delegating further still answers the first chat
        ctx.write(
            row.copy_as(
                chat_jid=delegation_jid(decision.folder),
                id=delegation_id(row.seq),
                content=decision.content,
                topic=decision.topic,  # the session the prefix or sticky layer chose
                forwarded_from=origin,
                origin=GATEWAY_ORIGIN,  # admitted in its chat already; the layers read it as a copy (pipeline)
            )
        )
        logger.info("delegated seq=%d to %s", row.seq, decision.folder)
        return True

    @staticmethod
    def _builtin(row: Message, ctx: LayerContext, name: str) -> None:
        if name == "ping":
            ctx.reply(row, "pong")
        else:
            logger.warning("seq=%d: unknown builtin handler %r; the message is kept and not answered", row.seq, name)


def _to_daemon(row: Message, name: str) -> NewMessage:
    # Through the outbox like any reply: the daemon's deliverer POSTs it, retrying across restarts.
    return NewMessage(
        chat_jid=daemon_jid(name),
        id=derived_id("fwd-", row.seq),
        content=row.content,
        direction="out",
        sender=row.sender,
        sender_name=row.sender_name,
        timestamp=row.timestamp,
        verb=row.verb,
        topic=row.topic,
        reply_to_id=row.id,
        forwarded_from=row.chat_jid,
        origin=GATEWAY_ORIGIN,
        delivered=read_from_store(daemon_jid(name)),
    )
