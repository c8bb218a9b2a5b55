"""Talking to a group from the terminal (``gated chat``, ``gated demo``), through the store like any channel.

Lines typed are stored as messages of the group's web chat (``web:<folder>``, topic ``terminal`` by default);
replies are read back from the store by seq and printed as they appear. Whoever runs the gateway answers them:
``gated demo`` in this very process (and then a message is routed at once), or a ``gated run`` elsewhere on the same
store (within its ``watch_interval``, 0.25 s). When standard input ends (Ctrl-D), the chat says so, waits for the
replies still due and returns.

On a terminal, the reader shows a ``you>`` prompt (:class:`Prompt`). A reply that arrives while it waits for a line
is printed above it: the prompt line is cleared, the reply written, and the prompt shown again with what the user had
typed so far (from :mod:`readline`), so a reply never lands after ``you>`` in the middle of someone's typing.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

from kanmon.gateway.delegation import handled_as
from kanmon.store import Message, NewMessage, PutResult
from kanmon.store.aio import AsyncStore

__all__ = ["Prompt", "TerminalChat", "read_lines"]

_FOLLOW_INTERVAL = 0.1
_CLEAR_LINE = "\r\x1b[K"  # back to the line's start, erase to its end (ANSI; every terminal emulator has it)


@dataclass
class Prompt:
    """The input prompt on a terminal, and whether it is on screen now (a line is being read after it)."""

    text: str
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    shown: bool = False

    def print_above(self, line: str) -> None:
        """Write ``line`` on a line of its own: above the prompt when it is shown, which is then shown again with
        what has been typed after it so far."""
        if not self.shown:
            print(line, file=self.stream, flush=True)
            return
        typed = _typed_so_far()
        self.stream.write(f"{_CLEAR_LINE}{line}\n{self.text}{typed}")
        self.stream.flush()


def _typed_so_far() -> str:
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows
        return ""
    return readline.get_line_buffer()


@dataclass
class TerminalChat:
    """One terminal conversation with the group ``folder``."""

    db: AsyncStore
    folder: str
    topic: str = "terminal"
    put: Callable[[NewMessage], Awaitable[PutResult]] | None = None  # the gateway's put_message, when in-process
    output: TextIO = field(default_factory=lambda: sys.stdout)
    reply_timeout: float = 60.0
    prompt: Prompt | None = None  # the reader's prompt on a terminal: replies are printed above it
    _after: int = 0
    _awaiting: set[str] = field(default_factory=set)
    _heard: bool = False  # something came back (a status line, an answer): gated is running

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
            if self._awaiting and self.prompt is not None:  # Ctrl-D at the prompt: say why nothing ends yet
                self._say(f"(end of input: waiting up to {self.reply_timeout:g}s for the replies still due)")
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
        result = await (
            self.put(new)
            if self.put is not None
            else self.db.retrying(self.db.store.put_message, new, now=self.db.clock.now())
        )
        self._awaiting.add(result.message.id)

    async def _settle(self) -> None:
        """Wait (up to ``reply_timeout``) until the agent has consumed every message sent (its replies come first),
        or the delegate it went to (``@child …``), which answers in this chat."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        while self._awaiting and loop.time() < deadline:
            for message_id in list(self._awaiting):
                chain = await handled_as(self._get, self.chat_jid, message_id)  # a delegate's answer is due too
                if not chain or chain[-1].status != "new":
                    self._awaiting.discard(message_id)
            await asyncio.sleep(_FOLLOW_INTERVAL)
        if self._awaiting and self._heard:
            self._say(
                f"(the agent has not finished with {len(self._awaiting)} message(s) in {self.reply_timeout:g}s; its "
                "answer is stored when it comes: `gated replies` or the web chat shows it)"
            )
        elif self._awaiting:
            self._say(f"(no reply yet to {len(self._awaiting)} message(s); is gated running?)")

    async def _get(self, chat_jid: str, message_id: str) -> Message | None:
        found: Message | None = await self.db.retrying(self.db.store.get_message, chat_jid, message_id)
        return found

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
                self._heard = self._heard or bool(self._awaiting)
                self._say(f"{self.folder}> {row.content}")

    def _say(self, line: str) -> None:
        if self.prompt is not None:
            self.prompt.print_above(line)
        else:
            print(line, file=self.output, flush=True)


async def read_lines(stream: TextIO, lines: asyncio.Queue[str | None], prompt: Prompt | None = None) -> None:
    """Feed ``lines`` from ``stream``, then None at end of input.

    On a terminal with a ``prompt``, each line is read with :func:`input` (line editing, and the typed text
    :class:`Prompt` shows again) after the prompt. The blocking reads happen in a daemon thread of their own, not
    the event loop's executor: a read still waiting for the user must not keep gated from exiting after Ctrl-C.
    """
    loop = asyncio.get_running_loop()
    interactive = prompt is not None and stream is sys.stdin and stream.isatty()

    def next_line() -> str:
        if not interactive:
            return stream.readline()
        assert prompt is not None
        prompt.shown = True
        try:
            return input(prompt.text) + "\n"
        except EOFError:
            print(file=prompt.stream)  # the cursor was after the prompt: what comes next starts a line of its own
            return ""
        finally:
            prompt.shown = False

    def read() -> None:
        while True:
            line = next_line()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n") if line else None)
            except RuntimeError:
                return  # the loop has closed: gated is exiting
            if not line:
                return

    threading.Thread(target=read, name="kanmon-stdin", daemon=True).start()
