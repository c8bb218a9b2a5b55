"""Delivery within one channel: its chats are sent to side by side, each chat's rows one at a time and in order.

Before, a channel's rows went out one after another across all its chats, so one chat's slow send (a big upload,
a platform's per-chat rate limit, an adapter that hangs until the request times out) held up every other chat of
that adapter, and 500 replies over 20 Matrix rooms took as long as 500 round trips to the homeserver.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable

import pytest

from kanmon.gateway import GatewayMetrics
from kanmon.gateway.delivery import DeliveryError, DeliveryPolicy, DeliveryWorker
from kanmon.store import Message, NewMessage, Store
from kanmon.store.aio import AsyncStore

WAIT = 10.0  # seconds a condition may take on a busy machine before the test fails


def reply(store: Store, chat: str, text: str) -> Message:
    return store.put_message(NewMessage(chat_jid=chat, content=text, direction="out")).message


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {WAIT:g}s: {what}")


class WatchedChannel:
    """A channel that records what it was sent and how its sends overlapped; ``held`` chats' sends wait for
    :meth:`release`, and the first ``failures`` sends fail transiently."""

    name: str = "tg"
    prefixes: tuple[str, ...] = ("telegram:",)

    def __init__(self, *, held: tuple[str, ...] = (), failures: int = 0) -> None:
        self.gates = {jid: asyncio.Event() for jid in held}
        self.failures = failures
        self.sent: list[tuple[str, str]] = []  # (chat, content) in the order the sends completed
        self.attempts: list[str] = []  # every chat a send began for
        self.busy: collections.Counter[str] = collections.Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.overlaps = 0  # sends begun for a chat that already had one in flight
        self.pause: Callable[[], float] = lambda: 0.0
        self.enough = asyncio.Event()  # set once ``wanted`` sends are in flight together
        self.wanted = 0

    def release(self, jid: str) -> None:
        self.gates[jid].set()

    async def send(self, message: Message) -> str | None:
        jid = message.chat_jid
        self.attempts.append(jid)
        self.overlaps += self.busy[jid] > 0
        self.busy[jid] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if jid in self.gates:
                await self.gates[jid].wait()
            if self.wanted:
                if self.in_flight >= self.wanted:
                    self.enough.set()
                try:  # sends one after another never get there: give up waiting once, and the figure tells
                    await asyncio.wait_for(self.enough.wait(), 3.0)
                except TimeoutError:
                    self.enough.set()
            await asyncio.sleep(self.pause())
            if self.failures:
                self.failures -= 1
                raise DeliveryError("503 from the adapter")
            self.sent.append((jid, message.content))
            return None
        finally:
            self.busy[jid] -= 1
            self.in_flight -= 1


async def test_a_send_that_hangs_in_one_chat_holds_up_no_other_chat_of_its_channel(store: Store) -> None:
    channel = WatchedChannel(held=("telegram:slow",))
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=3600.0)
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    reply(store, "telegram:slow", "a big upload")
    reply(store, "telegram:quick", "one")
    worker.wake(["telegram:slow", "telegram:quick"])
    await until(lambda: channel.sent == [("telegram:quick", "one")], "the other chat's reply, while the upload hangs")
    reply(store, "telegram:quick", "two")  # stored after the pass that found the hanging send
    worker.wake(["telegram:quick"])
    await until(lambda: len(channel.sent) == 2, "the other chat's next reply, while the upload still hangs")
    channel.release("telegram:slow")
    await until(lambda: len(channel.sent) == 3, "the upload")
    stopping.set()
    await asyncio.wait_for(running, WAIT)
    assert channel.sent == [("telegram:quick", "one"), ("telegram:quick", "two"), ("telegram:slow", "a big upload")]
    assert {row.delivery_status for row in store.new_messages(0)} == {"sent"}


async def test_at_most_chats_at_once_chats_are_sent_to_together_and_each_chat_one_row_at_a_time(
    store: Store,
) -> None:
    channel = WatchedChannel()
    channel.wanted = 4
    worker = DeliveryWorker(
        AsyncStore(store), [channel], metrics=GatewayMetrics(), policy=DeliveryPolicy(chats_at_once=4)
    )
    for n in range(3):
        for chat in range(12):
            reply(store, f"telegram:{chat}", f"reply {n}")
    assert await worker.deliver_due() == 36
    assert channel.most_in_flight == 4 and channel.overlaps == 0
    for chat in range(12):
        assert [text for jid, text in channel.sent if jid == f"telegram:{chat}"] == ["reply 0", "reply 1", "reply 2"]
    assert await worker.deliver_due() == 0  # nothing twice


async def test_a_transient_failure_stops_the_pass_for_the_chats_still_waiting_for_a_slot(store: Store) -> None:
    """The adapter is likely down: each further chat would wait out the same timeouts in this pass."""
    channel = WatchedChannel(failures=1)
    worker = DeliveryWorker(
        AsyncStore(store), [channel], metrics=GatewayMetrics(), policy=DeliveryPolicy(chats_at_once=1)
    )
    for chat in range(3):
        reply(store, f"telegram:{chat}", "hello")
    assert await worker.deliver_due() == 0
    assert channel.attempts == ["telegram:0"]
    assert [row.delivery_attempts for row in store.new_messages(0)] == [1, 0, 0]
    assert await worker.deliver_due() == 3


async def test_a_chat_backing_off_holds_back_its_later_rows_but_no_other_chat(store: Store) -> None:
    channel = WatchedChannel(failures=1)
    worker = DeliveryWorker(
        AsyncStore(store), [channel], metrics=GatewayMetrics(), policy=DeliveryPolicy(retry_base=60.0)
    )
    reply(store, "telegram:1", "first")
    assert await worker.deliver_due() == 0  # failed: backing off for a minute
    reply(store, "telegram:1", "second")
    reply(store, "telegram:2", "elsewhere")
    assert await worker.deliver_due() == 1
    assert channel.sent == [("telegram:2", "elsewhere")]
    assert [row.delivery_status for row in store.new_messages(0)] == ["pending", "pending", "sent"]


async def test_replies_stored_and_woken_for_while_sends_are_in_flight_go_out_once_each_in_order(
    store: Store,
) -> None:
    """Many wake-ups, passes finding chats busy, sends of random length and transient failures: still every row once,
    each chat's in seq order."""
    rng = random.Random(13)
    channel = WatchedChannel(failures=5)
    channel.pause = lambda: rng.choice((0.0, 0.0, 0.001, 0.005))
    worker = DeliveryWorker(
        AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=0.05, policy=DeliveryPolicy(chats_at_once=3)
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    expected: dict[str, list[str]] = collections.defaultdict(list)
    for n in range(120):
        jid = f"telegram:{rng.randrange(6)}"
        reply(store, jid, f"reply {n}")
        expected[jid].append(f"reply {n}")
        worker.wake([jid])
        if rng.random() < 0.3:
            await asyncio.sleep(rng.choice((0.0, 0.002)))
    await until(lambda: len(channel.sent) >= 120, "every reply")
    stopping.set()
    await asyncio.wait_for(running, WAIT)
    assert len(channel.sent) == 120 and channel.overlaps == 0
    for jid, texts in expected.items():
        assert [text for chat, text in channel.sent if chat == jid] == texts, jid


async def test_a_chat_with_more_rows_waiting_than_one_pass_reads_holds_up_no_other_chat(store: Store) -> None:
    """A pass looks for chats with due rows, not for the first due rows: a chat with hundreds queued behind a hanging
    send would otherwise fill every pass and starve the channel's other chats."""
    channel = WatchedChannel(held=("telegram:busy",))
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=0.05)
    for n in range(150):
        reply(store, "telegram:busy", f"reply {n}")
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    await until(lambda: channel.attempts == ["telegram:busy"], "the busy chat's first send, which hangs")
    reply(store, "telegram:quiet", "hello")
    worker.wake(["telegram:quiet"])
    await until(lambda: channel.sent == [("telegram:quiet", "hello")], "the quiet chat's reply")
    channel.release("telegram:busy")
    await until(lambda: len(channel.sent) == 151, "the busy chat's replies")
    stopping.set()
    await asyncio.wait_for(running, WAIT)
    assert [text for jid, text in channel.sent if jid == "telegram:busy"] == [f"reply {n}" for n in range(150)]


async def test_a_worker_fenced_while_a_send_is_in_flight_sends_no_further_row(store: Store) -> None:
    """gated lost its store lock: the new holder may be sending the same rows."""
    channel = WatchedChannel(held=("telegram:1",))
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics())
    for text in ("first", "second"):
        reply(store, "telegram:1", text)
    delivering = asyncio.create_task(worker.deliver_due())
    await until(lambda: channel.attempts == ["telegram:1"], "the first send")
    worker.fenced = True
    channel.release("telegram:1")
    assert await asyncio.wait_for(delivering, WAIT) == 1
    assert channel.sent == [("telegram:1", "first")]
    assert [row.delivery_status for row in store.new_messages(0)] == ["sent", "pending"]


async def test_stopping_waits_for_the_send_in_flight_and_leaves_the_rest_to_the_last_pass(store: Store) -> None:
    channel = WatchedChannel(held=("telegram:1",))
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=3600.0)
    for text in ("first", "second"):
        reply(store, "telegram:1", text)
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    await until(lambda: channel.attempts == ["telegram:1"], "the first send")
    stopping.set()
    await asyncio.sleep(0.1)
    assert not running.done()  # its request may already have reached the adapter: it is seen through
    channel.release("telegram:1")
    await asyncio.wait_for(running, WAIT)
    assert channel.sent == [("telegram:1", "first")]  # and no further row was started
    assert await worker.deliver_due() == 1  # the gateway's last pass, after the drain
    assert channel.sent == [("telegram:1", "first"), ("telegram:1", "second")]


async def test_a_chat_with_more_rows_than_one_read_takes_sends_them_all_without_waiting_for_a_periodic_pass(
    store: Store,
) -> None:
    channel = WatchedChannel()
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=3600.0)
    for n in range(150):  # a chat's task reads 100 rows at a time
        reply(store, "telegram:1", f"reply {n}")
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    await until(lambda: len(channel.sent) == 150, "all 150 replies")
    stopping.set()
    await asyncio.wait_for(running, WAIT)
    assert [text for _, text in channel.sent] == [f"reply {n}" for n in range(150)]


async def test_replies_to_a_chat_no_channel_takes_are_named_once_in_the_log(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A newcomer's `gated send test:room1` reply sat pending with no word anywhere but a metric."""
    channel = WatchedChannel()
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=3600.0)
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    with caplog.at_level(logging.WARNING, logger="kanmon.gateway.delivery"):
        for text in ("first", "second"):
            reply(store, "test:room1", text)
            reply(store, "telegram:1", text)
            worker.wake(["test:room1", "telegram:1"])
            sent = ("telegram:1", text)
            await until(lambda: sent in channel.sent, f"the Telegram reply {text!r}")  # noqa: B023 - awaited here
    stopping.set()
    await asyncio.wait_for(running, WAIT)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "replies to test:room1 wait in the outbox: no registered channel takes test: JIDs; they go out once an "
        "adapter for them registers"
    ]
    assert [row.delivery_status for row in store.new_messages(0) if row.chat_jid == "test:room1"] == ["pending"] * 2
