"""Live messages of the web channel, for the browser's event stream (SPEC §11): the built-in web "deliverer".

The loop reads every stored row in seq order, so it publishes each row of a ``web:`` chat here as it passes: the
user's messages, the agent's replies, command answers and status lines, in one order, each with its seq. A
subscriber gets what is published after it subscribed; what came before (or what it missed) it reads from the
store by seq (``Last-Event-ID``), which is why the feed itself keeps no history.

Beside rows, the feed carries :class:`~kanmon.gateway.typing.Working` changes (a run started or stopped working on a
topic) to every subscriber of the chat, whatever topic it follows, so a page can mark each topic that is being worked
on, not only the one it shows: never stored, so never replayed; a stream that starts asks
:class:`~kanmon.gateway.typing.TypingSignal`.

Publishing never waits. A subscriber whose queue is full is cut off (``lagged``): it reconnects and replays from
the store, and a slow browser never holds up the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from kanmon.gateway.typing import Working
from kanmon.store import Message

__all__ = ["ChatFeed", "Subscription"]

logger = logging.getLogger(__name__)

_END = None


@dataclass(eq=False)
class Subscription:
    """One listener on one chat (and topic, when given)."""

    chat_jid: str
    topic: str | None
    queue: asyncio.Queue[Message | Working | None] = field(repr=False)
    lagged: bool = False
    #: Set when a run of the chat ended (its messages' statuses changed, which publishes no row); cleared by the
    #: listener before it reads the store, so an end after that read is not missed.
    run_ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def wants(self, message: Message) -> bool:
        """True when ``message`` belongs to this subscription's chat and topic."""
        return message.chat_jid == self.chat_jid and (self.topic is None or message.topic == self.topic)

    async def messages(self) -> AsyncIterator[Message]:
        """Messages as they are published, until the feed closes or cuts this subscriber off."""
        async for event in self.events():
            if isinstance(event, Message):
                yield event

    async def events(self) -> AsyncIterator[Message | Working]:
        """Messages of the chat topic and :class:`Working` changes of every topic of the chat, in the order
        published."""
        while (event := await self.queue.get()) is not _END:
            yield event


class ChatFeed:
    """Fan-out of published messages to per-chat subscribers with bounded queues."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = {}
        self.published = 0

    def publish(self, message: Message) -> None:
        """Hand ``message`` to its chat's subscribers, never waiting."""
        self.published += 1
        for subscription in list(self._subscribers.get(message.chat_jid, ())):
            if not subscription.wants(message):
                continue
            if subscription.queue.qsize() >= self._queue_size:
                logger.warning("feed subscriber of %s fell behind; cutting it off to replay", message.chat_jid)
                self._cut_off(subscription)
            else:
                subscription.queue.put_nowait(message)

    def signal(self, working: Working) -> None:
        """Hand a chat topic's :class:`Working` change to every subscriber of the chat (of any topic), never waiting
        (dropped for a full queue: the subscriber is being cut off anyway)."""
        for subscription in list(self._subscribers.get(working.chat_jid, ())):
            if subscription.queue.qsize() < self._queue_size:
                subscription.queue.put_nowait(working)

    def run_ended(self, chat_jid: str) -> None:
        """A run of ``chat_jid`` recorded its outcome: tell its subscribers (:attr:`Subscription.run_ended`)."""
        for subscription in self._subscribers.get(chat_jid, ()):
            subscription.run_ended.set()

    @asynccontextmanager
    async def subscribe(self, chat_jid: str, topic: str | None = None) -> AsyncIterator[Subscription]:
        """Listen to ``chat_jid`` (one ``topic`` of it, when given) for as long as the context lasts."""
        # one slot more than the limit, so the end marker of a cut-off subscriber always fits
        subscription = Subscription(chat_jid, topic, asyncio.Queue(self._queue_size + 1))
        self._subscribers.setdefault(chat_jid, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._remove(subscription)

    def subscribers(self, chat_jid: str) -> int:
        """How many subscriptions listen to ``chat_jid``."""
        return len(self._subscribers.get(chat_jid, ()))

    def close(self) -> None:
        """End every subscription (shutdown)."""
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                self._cut_off(subscription)

    def _cut_off(self, subscription: Subscription) -> None:
        subscription.lagged = True
        self._remove(subscription)
        subscription.queue.put_nowait(_END)

    def _remove(self, subscription: Subscription) -> None:
        subscriptions = self._subscribers.get(subscription.chat_jid)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._subscribers[subscription.chat_jid]
