"""The impulse gate (SPEC §7): hold rapid or low-value events per chat until they are worth waking an agent.

A pure state machine: no I/O, no sleeping, no logging, and the time is always an argument (seconds on whatever
clock the caller uses, as long as it is one clock). The poll loop acts on what it answers:

- :meth:`ImpulseGate.offer` adds one inbound message's weight to its chat and answers whether the chat fires now;
  a chat fires when its accumulated weight reaches the threshold, and firing forgets the chat's held state (the
  caller then takes every row of that chat past its agent cursor);
- :meth:`ImpulseGate.tick` hands back the chats whose hold has run out and forgets them; call it on every tick,
  whether or not new messages arrived (arizuko flushed only on ticks with new messages);
- :meth:`ImpulseGate.release` forgets a chat whose rows were taken some other way (a command, a drain).

The hold is measured from the **first** held message: later messages never move the deadline later, so a steady
trickle below the threshold is still flushed at ``first + max_hold`` (arizuko measured from the latest event, and a
trickle postponed the flush forever). A chat held only by zero-weight events (reactions, typing) is flushed too.

A scheduled task's occurrence (verb :data:`TASK_VERB`, issue 15) fires its chat at once, whatever weights and
threshold the route gives: waking the agent is what a task is for.

Held state lives in memory, but it is derivable from the store: after a restart, offer each row past a chat's agent
cursor again, in seq order, with the row's own arrival time as ``now``; the deadline comes out where it was.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from kanmon.router.impulse import ImpulseConfig

__all__ = ["TASK_VERB", "HeldChat", "ImpulseGate"]

_DEFAULTS = ImpulseConfig()
#: The verb of a task occurrence (kanmon.gateway.scheduler): it always fires its chat.
TASK_VERB = "task"


@dataclass(frozen=True, slots=True)
class HeldChat:
    """What the gate holds for one chat: when the hold began, when it must end, and what it has counted."""

    first_at: float
    deadline: float
    weight: int
    count: int
    first_seq: int
    last_seq: int


class ImpulseGate:
    """Per-chat weight accounting with a hard deadline counted from the first held message."""

    def __init__(self) -> None:
        self._held: dict[str, HeldChat] = {}
        self._seqs: dict[str, set[int]] = {}  # the seqs each held chat holds (a run may take them all: taken())

    def offer(self, jid: str, verb: str, seq: int, now: float, config: ImpulseConfig = _DEFAULTS) -> bool:
        """Count one message of ``jid``; True when the chat fires now (and its held state is forgotten)."""
        held = self._held.get(jid)
        if held is not None and seq <= held.last_seq:
            # Already counted (a replay after a restart overlapping live offers): counting it twice would fire early.
            return False
        if held is None:
            held = HeldChat(now, now + config.max_hold_seconds, 0, 0, seq, seq)
        held = replace(
            held,
            weight=held.weight + config.weight(verb),
            count=held.count + 1,
            last_seq=seq,
            # A later message may bring a stricter route config; it can pull the deadline in, never push it out.
            deadline=min(held.deadline, held.first_at + config.max_hold_seconds),
        )
        if held.weight >= config.threshold or verb == TASK_VERB:
            self._forget(jid)
            return True
        self._held[jid] = held
        self._seqs.setdefault(jid, set()).add(seq)
        return False

    def due(self, now: float) -> list[str]:
        """Chats whose hold has run out at ``now``, earliest deadline first; nothing is forgotten."""
        expired = [(held.deadline, jid) for jid, held in self._held.items() if held.deadline <= now]
        return [jid for _, jid in sorted(expired)]

    def tick(self, now: float) -> list[str]:
        """The chats due at ``now``, which the gate forgets: the caller runs each of them."""
        jids = self.due(now)
        for jid in jids:
            self._forget(jid)
        return jids

    def lets_through(self, jid: str, first_seq: int) -> bool:
        """Whether a stream of ``jid`` whose oldest waiting row is ``first_seq`` may run: the chat is not held, or
        that row came before the hold began (a message that fired the chat, then a low-value event)."""
        held = self._held.get(jid)
        return held is None or first_seq < held.first_seq

    def taken(self, jid: str, seqs: Collection[int]) -> bool:
        """A run took ``jid``'s waiting rows ``seqs``: forget its hold if they include every held row (True).

        A message that fired its chat is taken by a run whose container may still be starting; a low-value event
        that arrives meanwhile begins a new hold, and the run takes it along with the message. That hold has then
        nothing left to wait for. A run takes one topic's rows of a chat: held rows of another topic, even between
        the rows it took, stay held.
        """
        held = self._seqs.get(jid)
        if held is None or not held.issubset(seqs):
            return False
        self._forget(jid)
        return True

    def release(self, jid: str) -> bool:
        """Forget ``jid``'s held state (its rows were taken another way); True when something was held."""
        return self._forget(jid)

    def _forget(self, jid: str) -> bool:
        self._seqs.pop(jid, None)
        return self._held.pop(jid, None) is not None

    def held(self) -> int:
        """How many chats are being held."""
        return len(self._held)

    def holding(self, jid: str) -> HeldChat | None:
        """What is held for ``jid``, or None."""
        return self._held.get(jid)

    def next_deadline(self) -> float | None:
        """The earliest deadline of any held chat (when the loop must look again at the latest), or None."""
        return min((held.deadline for held in self._held.values()), default=None)
