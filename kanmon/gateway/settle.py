"""How long a lane waits for the rest of a burst before it runs (issue 13: bursts become one run per group).

A chat that was quiet gets no wait at all: a single message runs at once. A chat whose messages keep arriving (the
loop saw rows of it less than ``quiet`` seconds ago) waits about as long as the last gap between them, capped at
``cap``, so a run started for the first messages of a burst does not leave the rest for a second run. The lane's run
then takes everything that arrived meanwhile. A run of the chat ending ends its burst: what arrives next is a new
turn (someone answering the agent, the next message of a script that waits for each answer), and waits for nothing
however quickly it came.
"""

from __future__ import annotations

from kanmon.clock import Clock

__all__ = ["Settle"]


class Settle:
    """Per-chat arrival times (on the injected clock) and the settle delay they call for."""

    def __init__(self, clock: Clock, cap: float, *, quiet: float = 1.0) -> None:
        self._clock = clock
        self.cap = cap
        self.quiet = quiet
        self._seen: dict[str, float] = {}  # chat -> when the loop last saw rows of it
        self._gap: dict[str, float] = {}  # chat -> the gap before that

    def arrived(self, jid: str) -> None:
        """The loop just read a row of ``jid`` (rows read in one tick arrived together: no gap between them)."""
        now = self._clock.monotonic()
        last = self._seen.get(jid)
        if last is not None and now > last:
            self._gap[jid] = now - last
        elif last is None:
            self._gap.pop(jid, None)
        self._seen[jid] = now
        if len(self._seen) > 10_000:  # forget chats that went quiet long ago
            horizon = now - self.quiet
            self._seen = {chat: seen for chat, seen in self._seen.items() if seen >= horizon}
            self._gap = {chat: gap for chat, gap in self._gap.items() if chat in self._seen}

    def ended(self, jid: str) -> None:
        """A run of ``jid`` ended: what arrives next starts afresh (no gap to the messages before)."""
        self._seen.pop(jid, None)
        self._gap.pop(jid, None)

    def delay(self, jid: str) -> float:
        """Seconds ``jid``'s lane should wait before it runs: 0 for a quiet chat, at most ``cap``."""
        gap = self._gap.get(jid)
        if self.cap <= 0 or gap is None or gap >= self.quiet:
            return 0.0
        return min(self.cap, gap)
