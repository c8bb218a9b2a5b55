"""The "typing…" indicator (``sendChatAction``) while an agent works on a message.

Telegram shows an action for about five seconds, so it is sent again every ``interval`` seconds until the reply
goes out (:meth:`Typing.stop` from ``/send``), gated asks to stop (``/typing`` with ``on: false``), or ``limit``
seconds have passed (a message no agent answers must not type forever). Failures only cost the indicator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

__all__ = ["Typing"]

logger = logging.getLogger(__name__)


class Typing:
    """Per-chat typing indicators; ``limit`` 0 turns them off."""

    def __init__(self, bot: Bot, *, limit: float, interval: float = 4.5) -> None:
        self._bot = bot
        self._limit = limit
        self._interval = interval
        self._tasks: dict[tuple[int, int | None], asyncio.Task[None]] = {}

    def start(self, chat_id: int, thread_id: int | None = None) -> None:
        """Show "typing…" in the chat (topic) until :meth:`stop` or the limit."""
        if self._limit <= 0:
            return
        key = (chat_id, thread_id)
        running = self._tasks.pop(key, None)
        if running is not None:
            running.cancel()
        task = asyncio.create_task(self._keep_typing(chat_id, thread_id), name=f"typing-{chat_id}")
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._tasks.pop(key, None) if self._tasks.get(key) is done else None)

    def stop(self, chat_id: int) -> None:
        """Stop every indicator of the chat (all its topics)."""
        for key in [key for key in self._tasks if key[0] == chat_id]:
            self._tasks.pop(key).cancel()

    async def close(self) -> None:
        """Stop them all (shutdown)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_typing(self, chat_id: int, thread_id: int | None) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self._limit
        while loop.time() < until:
            try:
                await self._bot.send_chat_action(chat_id, ChatAction.TYPING, message_thread_id=thread_id)
            except TelegramError as exc:
                logger.debug("typing indicator in %s: %s", chat_id, exc)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(min(self._interval, max(0.0, until - loop.time())))
