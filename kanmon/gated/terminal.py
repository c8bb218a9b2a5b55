"""Talking to a group from the terminal (``gated chat``, ``gated demo``), through the store like any channel.

Lines typed are stored as messages of the group's web chat (``web:<folder>``, topic ``terminal`` by default);
replies are read back from the store by seq and printed as they appear. Whoever runs the gateway answers them:
``gated demo`` in this very process (and then a message is routed at once), or a ``gated run`` elsewhere on the same
store (within a poll interval). When standard input ends, the chat waits for the replies still due and returns.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

from kanmon.store import Message, NewMessage, PutResult
from kanmon.store.aio import AsyncStore

__all__ = ["TerminalChat", "read_lines"]

_FOLLOW_INTERVAL = 0.1


@dataclass
class TerminalChat:
    """One terminal conversation with the group ``folder``."""

    db: AsyncStore
    folder: str
    topic: str = "terminal"
    put: Callable[[NewMessage], Awaitable[PutResult]] | None = None  # the gateway's put_message, when in-process
    output: TextIO = field(default_factory=lambda: sys.stdout)
    reply_timeout: float = 60.0
    _after: int = 0
    _awaiting: set[str] = field(default_factory=set)

    @property
    def chat_jid(self) -> str:
        """The chat the terminal speaks in."""
        return f"web:{self.folder}"

    async def run(self, lines: asyncio.Queue[str | None]) -> int:
        """Send each line from ``lines`` (None ends), print replies; returns how many replies are still missing."""
        self._after = await self.db.retrying(self.db.store.max_seq)
        follower = asyncio.create_task(self._follow())
        try:
            while (line := await lines.get()) is not None:
                if line.strip():
                    await self._send(line.strip())
            await self._settle()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await self._print_new()
        return len(self._awaiting)

    async def _send(self, text: str) -> None:
        user = getpass.getuser()
        new = NewMessage(
            chat_jid=self.chat_jid, content=text, sender=f"cli:{user}", sender_name=user, topic=self.topic, origin="cli"
        )
        result = await (self.put(new) if self.put is not None else self.db.retrying(self.db.store.put_message, new))
        self._awaiting.add(result.message.id)

    async def _settle(self) -> None:
        """Wait (up to ``reply_timeout``) until the agent has consumed every message sent (its replies come first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        while self._awaiting and loop.time() < deadline:
            for message_id in list(self._awaiting):
                message = await self.db.retrying(self.db.store.get_message, self.chat_jid, message_id)
                if message is None or message.status != "new":
                    self._awaiting.discard(message_id)
            await asyncio.sleep(_FOLLOW_INTERVAL)
        if self._awaiting:
            print(f"(no reply yet to {len(self._awaiting)} message(s); is gated running?)", file=self.output)

    async def _follow(self) -> None:
        while True:
            await self._print_new()
            await asyncio.sleep(_FOLLOW_INTERVAL)

    async def _print_new(self) -> None:
        rows: list[Message] = await self.db.retrying(
            self.db.store.chat_messages, self.chat_jid, self._after, topic=self.topic
        )
        for row in rows:
            self._after = row.seq
            if row.direction == "out":
                print(f"{self.folder}> {row.content}", file=self.output, flush=True)


async def read_lines(stream: TextIO, lines: asyncio.Queue[str | None], prompt: str = "") -> None:
    """Feed ``lines`` from ``stream``, then None at end of input.

    The blocking reads happen in a daemon thread of their own, not the event loop's executor: a read still waiting
    for the user must not keep gated from exiting after Ctrl-C.
    """
    loop = asyncio.get_running_loop()

    def read() -> None:
        while True:
            if prompt and stream.isatty():
                print(prompt, end="", flush=True)
            line = stream.readline()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n") if line else None)
            except RuntimeError:
                return  # the loop has closed: gated is exiting
            if not line:
                return

    threading.Thread(target=read, name="kanmon-stdin", daemon=True).start()
