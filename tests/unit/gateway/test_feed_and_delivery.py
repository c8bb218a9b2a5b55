"""The web feed (live messages for the browser) and the delivery outbox.

arizuko's web replies without a reply-to were invisible in the browser, its outbox lived in memory (a restart lost
it), and a slow browser could hold the gateway up. Here every web row is published in seq order, a slow subscriber
is cut off to replay from the store, and delivery marks rows sent only once the channel took them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import pytest

from kanmon.clock import FakeClock
from kanmon.gateway import ChatFeed, GatewayMetrics
from kanmon.gateway.delivery import DeliveryError, DeliveryPolicy, DeliveryWorker, StoreReadChannel
from kanmon.store import Message, NewMessage, Store
from kanmon.store.aio import AsyncStore


def stored(store: Store, chat: str, text: str, *, topic: str = "", direction: str = "in") -> Message:
    new = NewMessage(chat_jid=chat, content=text, topic=topic, direction=direction)  # type: ignore[arg-type]
    return store.put_message(new).message


async def test_a_subscriber_gets_its_chat_and_topic_in_publish_order(store: Store) -> None:
    feed = ChatFeed()
    async with feed.subscribe("web:corp", topic="t1") as subscription:
        for message in [
            stored(store, "web:corp", "question", topic="t1"),
            stored(store, "web:corp", "other topic", topic="t2"),
            stored(store, "web:other", "other chat", topic="t1"),
            stored(store, "web:corp", "answer", topic="t1", direction="out"),
        ]:
            feed.publish(message)
        feed.close()
        received = [message.content async for message in subscription.messages()]
    assert received == ["question", "answer"]
    assert feed.subscribers("web:corp") == 0


async def test_a_slow_subscriber_is_cut_off_and_never_blocks_publishing(store: Store) -> None:
    feed = ChatFeed(queue_size=2)
    message = stored(store, "web:corp", "hi")
    async with feed.subscribe("web:corp") as slow, feed.subscribe("web:corp") as keeping_up:
        for _ in range(3):
            feed.publish(message)  # never awaits: the gateway is not held up
            keeping_up.queue.get_nowait()
        assert slow.lagged and not keeping_up.lagged
        # it gets what fitted, then its stream ends: it reconnects and replays the rest from the store by seq
        assert [m.seq async for m in slow.messages()] == [message.seq, message.seq]
        assert feed.subscribers("web:corp") == 1


class FlakyChannel:
    """A channel that refuses the first ``failures`` sends (transiently), then takes everything."""

    name: str = "flaky"
    prefixes: tuple[str, ...] = ("telegram:",)

    def __init__(self, failures: int, *, transient: bool = True) -> None:
        self.failures = failures
        self.transient = transient
        self.sent: list[str] = []

    async def send(self, message: Message) -> str | None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("503 from the adapter", transient=self.transient)
        self.sent.append(message.content)
        return f"platform-{message.seq}"


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


async def test_replies_are_sent_once_and_marked_sent(store: Store, metrics: GatewayMetrics) -> None:
    channel = FlakyChannel(0)
    worker = DeliveryWorker(AsyncStore(store), [channel, StoreReadChannel("web", ["web:"])], metrics=metrics)
    tg = stored(store, "telegram:1", "to telegram", direction="out")
    web = stored(store, "web:corp", "to the browser", direction="out")
    assert await worker.deliver_due() == 2
    assert await worker.deliver_due() == 0  # nothing is sent twice
    assert channel.sent == ["to telegram"]
    rows = {m.seq: m for m in store.new_messages(0)}
    assert rows[tg.seq].delivery_status == "sent" and rows[tg.seq].platform_message_id == f"platform-{tg.seq}"
    assert rows[web.seq].delivery_status == "sent"
    assert metrics.registry.get_sample_value("kanmon_deliveries_total", {"channel": "web", "result": "sent"}) == 1


async def test_a_transient_failure_leaves_the_row_pending_for_the_next_pass(
    store: Store, metrics: GatewayMetrics
) -> None:
    channel = FlakyChannel(1)
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=metrics)
    row = stored(store, "telegram:1", "retry me", direction="out")
    assert await worker.deliver_due() == 0
    pending = store.new_messages(0)[0]
    assert (pending.delivery_status, pending.delivery_attempts, pending.delivery_error) == (
        "pending",
        1,
        "503 from the adapter",
    )
    assert await worker.deliver_due() == 1
    assert channel.sent == ["retry me"] and store.new_messages(0)[0].seq == row.seq


async def test_a_permanent_failure_marks_the_row_failed(store: Store, metrics: GatewayMetrics) -> None:
    worker = DeliveryWorker(AsyncStore(store), [FlakyChannel(1, transient=False)], metrics=metrics)
    stored(store, "telegram:1", "cannot go", direction="out")
    await worker.deliver_due()
    assert store.new_messages(0)[0].delivery_status == "failed"
    assert await worker.deliver_due() == 0


async def test_the_worker_delivers_when_woken_and_stops_when_told(store: Store, metrics: GatewayMetrics) -> None:
    channel = FlakyChannel(0)
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=metrics, interval=60.0)
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    await asyncio.sleep(0.05)
    stored(store, "telegram:1", "wake up", direction="out")
    worker.wake()
    for _ in range(100):
        if channel.sent:
            break
        await asyncio.sleep(0.02)
    assert channel.sent == ["wake up"]
    stopping.set()
    await asyncio.wait_for(running, 5)


async def test_backoff_is_on_the_injected_clock_so_a_clock_standing_still_retries_nothing(
    store: Store, metrics: GatewayMetrics
) -> None:
    """Issue 13: the store compared "due" against the wall clock while the worker computed backoff on its own clock;
    a fake clock standing still then gave three attempts where one was due."""
    clock = FakeClock()
    channel = FlakyChannel(5)
    worker = DeliveryWorker(
        AsyncStore(store, clock=clock), [channel], metrics=metrics, clock=clock, policy=DeliveryPolicy(retry_base=10.0)
    )
    stored(store, "telegram:1", "later", direction="out")
    for _ in range(3):
        await worker.deliver_due()
    assert store.new_messages(0)[0].delivery_attempts == 1  # backing off: time has not moved
    clock.advance(13.0)  # past the first backoff (10 s plus at most a quarter of jitter)
    await worker.deliver_due()
    assert store.new_messages(0)[0].delivery_attempts == 2


async def test_a_wake_up_for_one_chat_looks_only_at_that_chats_channel(store: Store, metrics: GatewayMetrics) -> None:
    telegram, matrix = FlakyChannel(0), FlakyChannel(0)
    matrix.name, matrix.prefixes = "matrix", ("matrix:",)
    asked: list[tuple[str, ...]] = []  # the channels whose due rows (or chats with due rows) were looked for
    pending, chats = store.pending_deliveries, store.due_chats

    def counting(prefixes: Sequence[str], *, now: dt.datetime, limit: int = 100, exact: bool = False) -> list[Message]:
        asked.append(tuple(prefixes))
        return pending(prefixes, now=now, limit=limit, exact=exact)

    def counting_chats(
        prefixes: Sequence[str], *, now: dt.datetime, limit: int = 100, exact: bool = False
    ) -> list[str]:
        asked.append(tuple(prefixes))
        return chats(prefixes, now=now, limit=limit, exact=exact)

    store.pending_deliveries = counting  # type: ignore[method-assign]
    store.due_chats = counting_chats  # type: ignore[method-assign]
    worker = DeliveryWorker(AsyncStore(store), [telegram, matrix], metrics=metrics, interval=3600.0)
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    for _ in range(1000):  # the first pass (10 s at most: the machine may be busy) looks at every channel
        if len(asked) >= 2:
            break
        await asyncio.sleep(0.01)
    asked.clear()
    stored(store, "telegram:1", "only here", direction="out")
    worker.wake(["telegram:1"])
    for _ in range(1000):
        if telegram.sent:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(running, 5)
    assert telegram.sent == ["only here"] and asked == [("telegram:",)]
