"""Following the agent's answer to one message through the store, for the OpenAI-compatible API.

The answer to a message is every outbound row of its chat that replies to it (``reply_to_id`` = the message's id: a
command's answer, a dead letter's apology) or that a run whose batch took it wrote: the replies of a run answer its
batch's last message, so when requests of one conversation arrive while its run works, one run answers them all and
each gets that run's answer. A delegated message (``@child …``) is answered by the run that took its copy, in this
chat (:mod:`kanmon.gateway.delegation`). It is complete once the message, or the last copy it was delegated as, is
no longer waiting (``status`` left ``new``: the run recorded its outcome, or a command consumed it). Nothing here
trusts memory alone: rows are read from the store by seq, and the gateway's live feed only says when to look again
(the same feed the web chat streams from), and so does the feed's word that a run answering the chat ended (its
outcome changes a status and publishes no row), with a short poll as the floor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kanmon.gateway import Gateway, Subscription
from kanmon.gateway.delegation import handled_as
from kanmon.store import Message, Run

__all__ = ["PAGE", "POLL_SECONDS", "Answer", "follow_answer"]

POLL_SECONDS = 0.5  # the floor: how often the message's status is looked at when the feed says nothing
PAGE = 500


@dataclass(frozen=True)
class Answer:
    """One event of an answer: a reply row, or the end (``settled`` is the message's final status)."""

    reply: Message | None = None
    settled: str | None = None


async def follow_answer(gateway: Gateway, subscription: Subscription, message: Message) -> AsyncIterator[Answer]:
    """The replies to ``message`` as they are stored, in seq order, then one :class:`Answer` with its final status.

    ``subscription`` must be a feed subscription to ``message``'s chat taken before the message was stored, so no
    reply can fall between the store read and the wake-up. Runs until the message is settled; the caller bounds it
    with a timeout (the run goes on regardless and its replies stay in the store).
    """
    store = gateway.store
    after = message.seq
    live = subscription.messages()
    upcoming: asyncio.Future[Message | None] | None = None
    took = _Takers(gateway, message)
    try:
        while True:
            subscription.run_ended.clear()  # before the read: a run that ends after it sets it again
            # the status first, then the rows: a reply stored before the status changed is in this read
            chain = await handled_as(took.get, message.chat_jid, message.id)  # and the copies it was delegated as
            status = chain[-1].status if chain else "done"
            rows = await gateway.db.once(store.chat_messages, message.chat_jid, after, limit=PAGE)
            for row in rows:
                after = row.seq
                if row.direction == "out" and (row.reply_to_id == message.id or await took(row, chain or [message])):
                    yield Answer(reply=row)
            if len(rows) == PAGE:
                continue
            if status != "new":
                yield Answer(settled=status)
                return
            if upcoming is None or upcoming.done():
                upcoming = asyncio.ensure_future(_next(live))
            ended = asyncio.ensure_future(subscription.run_ended.wait())
            waits: set[asyncio.Future[Any]] = {upcoming, ended}
            try:
                await asyncio.wait(waits, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
    finally:
        if upcoming is not None:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await upcoming


class _Takers:
    """Whether a reply row was written by a run whose batch took ``message`` or a copy it was delegated as (one read
    per run, remembered)."""

    def __init__(self, gateway: Gateway, message: Message) -> None:
        self._gateway, self._message = gateway, message
        self._runs: dict[str, Run | None] = {}

    async def get(self, chat_jid: str, message_id: str) -> Message | None:
        """One stored message (:data:`kanmon.gateway.delegation.GetMessage`)."""
        found: Message | None = await self._gateway.db.once(self._gateway.store.get_message, chat_jid, message_id)
        return found

    async def __call__(self, row: Message, chain: list[Message]) -> bool:
        if row.run_id is None:
            return False
        if row.run_id not in self._runs:
            self._runs[row.run_id] = await self._gateway.db.once(self._gateway.store.get_run, row.run_id)
        run = self._runs[row.run_id]
        return run is not None and any(_took(run, taken) and row.topic == taken.topic for taken in chain)


def _took(run: Run, message: Message) -> bool:
    """Whether ``run``'s batch took ``message``: its chat and topic, its seq within the batch's."""
    return (
        (run.chat_jid, run.topic) == (message.chat_jid, message.topic)
        and run.first_seq is not None
        and run.last_seq is not None
        and run.first_seq <= message.seq <= run.last_seq
    )


async def _next(live: AsyncIterator[Message]) -> Message | None:
    """The next live row, or None once the feed ended (cut off, or the gateway stops): then polling alone goes on."""
    try:
        return await anext(live)
    except StopAsyncIteration:
        await asyncio.sleep(POLL_SECONDS)
        return None
