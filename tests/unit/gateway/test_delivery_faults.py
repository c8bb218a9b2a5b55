"""Delivery faults an outside review found: each once left a reply unsent for long, or sent it again and again.

* a send that failed with anything but :class:`DeliveryError` (a 2xx answer httpx cannot decode, a deliverer's bug)
  skipped ``mark_delivery``: the row stayed pending with no attempt counted, was POSTed again on every pass, its
  deadline never applied, and the chat's later replies waited behind it for ever;
* ``due_chats`` counted a chat as due when any of its rows was, although its deliverer sends nothing while the oldest
  row backs off: 100 such chats (an adapter's outage) filled the pass and hid a chat whose reply really was due;
* a wake-up that came while its channel's pass was in flight was kept as "look again" without its chats, and the
  look again then started no pass: the reply waited for the periodic pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kanmon.gateway import GatewayMetrics
from kanmon.gateway.adapters import AdapterDeliveryConfig, adapter_deliverer
from kanmon.gateway.delivery import DeliveryPolicy, DeliveryWorker
from kanmon.store import Channel, Message, NewMessage, Store
from kanmon.store.aio import AsyncStore
from tests.clocks import ShiftedClock
from tests.http_serving import serving

WAIT = 10.0  # seconds a condition may take on a busy machine before the test fails
SECRET = "channel-secret-of-this-test"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def reply(store: Store, chat: str, text: str) -> Message:
    return store.put_message(NewMessage(chat_jid=chat, content=text, direction="out")).message


class Recorder:
    """A channel that takes every message but the ``broken`` ones (by content): their sends raise an error no
    deliverer is meant to raise."""

    name = "tg"
    prefixes: tuple[str, ...] = ("telegram:",)

    def __init__(self, *, broken: tuple[str, ...] = ()) -> None:
        self.broken = broken
        self.sent: list[tuple[str, str]] = []
        self.attempts = 0

    async def send(self, message: Message) -> str | None:
        self.attempts += 1
        if message.content in self.broken:
            raise KeyError("a deliverer's bug")
        self.sent.append((message.chat_jid, message.content))
        return None


# ------------------------------------------------------------------------------------ failures of an unknown kind
async def test_a_send_failing_with_an_unexpected_error_counts_as_a_transient_failure_and_meets_the_deadline(
    store: Store,
) -> None:
    clock = ShiftedClock()
    channel = Recorder(broken=("one",))
    policy = DeliveryPolicy(retry_base=1.0, deadline=60.0)
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), clock=clock, policy=policy)
    first = reply(store, "telegram:1", "one")
    reply(store, "telegram:1", "two")

    assert await worker.deliver_due() == 0
    row = store.get_message("telegram:1", first.id)
    assert row is not None and row.delivery_status == "pending" and row.delivery_attempts == 1
    assert row.deliver_after is not None and row.deliver_after > clock.now()  # backing off, not every pass
    assert row.delivery_error is not None and "KeyError" in row.delivery_error
    assert await worker.deliver_due() == 0 and channel.attempts == 1  # not tried again before its backoff

    clock.advance(3600)  # past the deadline: the next failure is the last, and the chat's next reply goes out
    assert await worker.deliver_due() == 1
    row = store.get_message("telegram:1", first.id)
    assert row is not None and row.delivery_status == "failed"
    assert channel.sent == [("telegram:1", "two")]
    assert channel.attempts == 3


def adapter_channel(url: str) -> Channel:
    """A registered adapter at ``url`` taking ``telegram:`` chats."""
    return Channel(name="tg", url=url, token_hash="h", jid_prefixes=["telegram:"], capabilities={}, registered_at=NOW)


def _adapter_app(answer: Response) -> Starlette:
    async def send(request: Request) -> Response:
        await request.body()
        return answer

    return Starlette(routes=[Route("/send", send, methods=["POST"])])


@pytest.fixture
async def undecodable() -> AsyncIterator[str]:
    """An adapter that takes the message (200) but answers a body that says gzip and is not."""
    answer = Response(b"not gzip at all", headers={"Content-Encoding": "gzip"}, media_type="application/json")
    async with serving(_adapter_app(answer)) as url:
        yield url


async def test_an_adapter_answer_httpx_cannot_decode_is_a_transient_failure_with_a_backoff(
    store: Store, undecodable: str
) -> None:
    clock = ShiftedClock()
    channel = adapter_channel(undecodable)
    config = AdapterDeliveryConfig(channel_secret=SECRET, retry_base=1.0, deadline=60.0, quick_tries=1)
    async with httpx.AsyncClient() as client:
        deliverer = adapter_deliverer(channel, client, config, instance="k1")
        worker = DeliveryWorker(
            AsyncStore(store), [deliverer], metrics=GatewayMetrics(), clock=clock, policy=config.policy()
        )
        first = reply(store, "telegram:1", "one")
        assert await worker.deliver_due() == 0
        row = store.get_message("telegram:1", first.id)
        assert row is not None and row.delivery_status == "pending" and row.delivery_attempts == 1
        assert row.delivery_error is not None and "DecodingError" in row.delivery_error
        clock.advance(3600)
        assert await worker.deliver_due() == 0
        row = store.get_message("telegram:1", first.id)
        assert row is not None and row.delivery_status == "failed"


@pytest.fixture
async def deeply_nested() -> AsyncIterator[str]:
    """An adapter that takes the message and answers JSON nested deeper than Python's parser recurses."""
    body = "[" * 100_000 + "]" * 100_000
    answer = Response(gzip.compress(body.encode()), headers={"Content-Encoding": "gzip"}, media_type="application/json")
    async with serving(_adapter_app(answer)) as url:
        yield url


async def test_a_taken_message_whose_answer_cannot_be_parsed_is_sent_without_a_platform_id(
    store: Store, deeply_nested: str
) -> None:
    with pytest.raises(RecursionError):
        json.loads("[" * 100_000 + "]" * 100_000)
    channel = adapter_channel(deeply_nested)
    async with httpx.AsyncClient() as client:
        deliverer = adapter_deliverer(channel, client, AdapterDeliveryConfig(channel_secret=SECRET), instance="k1")
        worker = DeliveryWorker(AsyncStore(store), [deliverer], metrics=GatewayMetrics())
        first = reply(store, "telegram:1", "one")
        assert await worker.deliver_due() == 1
    row = store.get_message("telegram:1", first.id)
    assert row is not None and row.delivery_status == "sent" and row.platform_message_id is None


# ------------------------------------------------------------------------------------ chats whose head backs off
async def test_chats_whose_oldest_reply_backs_off_do_not_hide_a_chat_whose_reply_is_due(store: Store) -> None:
    later = store.clock.now() + dt.timedelta(minutes=10)
    for n in range(101):  # more than a pass looks at (due_chats' limit, 100)
        head = reply(store, f"telegram:stuck{n}", "backing off")
        store.mark_delivery(head.seq, "pending", error="503", deliver_after=later)
        reply(store, f"telegram:stuck{n}", "queued behind it")
    reply(store, "telegram:fresh", "hello")
    channel = Recorder()
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics())
    assert await worker.deliver_due() == 1
    assert channel.sent == [("telegram:fresh", "hello")]


# ------------------------------------------------------------------------------------ wake-ups during a pass
async def test_a_wake_up_during_its_channels_pass_is_acted_on_when_the_pass_ends(store: Store) -> None:
    looked, go_on = threading.Event(), threading.Event()
    due_chats = store.due_chats
    passes = 0

    def held_due_chats(*args: Any, **kwargs: Any) -> list[str]:
        """The first pass's read, held after it read (as a slow store would): what is stored next is not in it."""
        nonlocal passes
        passes += 1
        found = due_chats(*args, **kwargs)
        if passes == 1:
            looked.set()
            go_on.wait(WAIT)
        return found

    store.due_chats = held_due_chats  # type: ignore[method-assign]
    channel = Recorder()
    worker = DeliveryWorker(AsyncStore(store), [channel], metrics=GatewayMetrics(), interval=3600.0)
    stopping = asyncio.Event()
    reply(store, "telegram:a", "one")
    running = asyncio.create_task(worker.run(stopping))
    try:
        assert await asyncio.to_thread(looked.wait, WAIT)
        reply(store, "telegram:b", "two")
        worker.wake(["telegram:b"])
        await asyncio.sleep(0.05)  # the wake-up is taken while the pass is in flight
        go_on.set()
        for _ in range(int(WAIT / 0.01)):
            if len(channel.sent) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(channel.sent) == [("telegram:a", "one"), ("telegram:b", "two")]  # not an hour later
    finally:
        go_on.set()
        stopping.set()
        await asyncio.wait_for(running, WAIT)
