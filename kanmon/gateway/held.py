"""Which chats the impulse gate holds, worked out from the stored rows alone (SPEC §7).

The gate's state lives in ``gated run``'s memory, but it is derivable from the store: offer each routed row still
waiting for an agent to a fresh :class:`~kanmon.gateway.gate.ImpulseGate`, in seq order, at the time it arrived
(``received_at``), with the impulse settings its route gives it, and the holds come out where they were. The loop's
start-up recovery rebuilds its gate that way (:meth:`kanmon.gateway.loop.MessageLoop._recover`), and ``gated
status``, another process, uses :func:`held_chats` to tell held chats from waiting ones without asking gated.

Rows in a running batch are left out by the caller (the gate fired for them before the run took them); rows the loop
has not read yet are not offered either (nobody has weighed them). A hold whose deadline has passed is not held: the
loop flushes it on its next tick, so the chat is waiting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from kanmon.gateway.context import LayerContext
from kanmon.gateway.decisions import IdleQueue
from kanmon.gateway.gate import HeldChat, ImpulseGate
from kanmon.router import ImpulseConfig, MessageFields, resolve
from kanmon.store import Store, WaitingRow

__all__ = ["HeldStatus", "held_chats", "stored_impulse"]


@dataclass(frozen=True, slots=True)
class HeldStatus:
    """One chat the gate holds: what it holds (weight, rows, seqs), the threshold to reach, and when it fires."""

    chat_jid: str
    held: HeldChat
    threshold: int
    fires_at: dt.datetime  # aware UTC: ``first held row's arrival + max_hold``


def stored_impulse(ctx: LayerContext, chat_jid: str, sender: str, verb: str) -> ImpulseConfig:
    """The impulse settings the routes give a stored row: the matching route's override merged over ``ctx.impulse``
    (the configured defaults), or those defaults when no route matches (``web:``, ``local:`` chats)."""
    fields = MessageFields(chat_jid=chat_jid, sender=sender, verb=verb)
    decision = resolve(ctx.routes(), fields, impulse=ctx.impulse, folders=ctx.groups().keys())
    return decision.impulse if decision is not None else ctx.impulse


def held_chats(store: Store, impulse: ImpulseConfig, rows: Iterable[WaitingRow], now: dt.datetime) -> list[HeldStatus]:
    """The chats the gate holds at ``now`` (aware), given their waiting rows in seq order per chat (as
    :meth:`~kanmon.store.Store.waiting_rows` reads them); the one firing first comes first.

    ``impulse`` is the configured default (``impulse.*`` settings). Reads the routes and groups once.
    """
    ctx = LayerContext(store, IdleQueue(), impulse=impulse)
    gate = ImpulseGate()
    thresholds: dict[str, int] = {}
    for row in rows:
        config = stored_impulse(ctx, row.chat_jid, row.sender, row.verb)
        gate.offer(row.chat_jid, row.verb, row.seq, row.received_at.timestamp(), config)
        thresholds[row.chat_jid] = config.threshold
    gate.tick(now.timestamp())  # holds that ran out are the loop's to flush: those chats wait
    found = [
        HeldStatus(jid, held, thresholds[jid], dt.datetime.fromtimestamp(held.deadline, dt.UTC))
        for jid in thresholds
        if (held := gate.holding(jid)) is not None
    ]
    return sorted(found, key=lambda status: (status.fires_at, status.chat_jid))
