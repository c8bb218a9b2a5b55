"""Replies reach channel adapters over real HTTP, are retried through outages, and are never shown twice.

arizuko kept failed sends in an in-memory outbox it never replayed, so a reply sent while an adapter was down was
simply lost, and an adapter that took a message but failed to answer got nothing to recognise a repeat by. Here both
kanmon and a fake adapter are real uvicorn servers on 127.0.0.1: the adapter registers and posts a message over
HTTP, the echo agent answers, and kanmon POSTs the reply to the adapter's ``/send``. The outbound row is the outbox:
it stays ``pending`` (with a growing ``deliver_after``) until the adapter takes it, across restarts, and fails only
past the deadline; every retry carries the same idempotency key, which the fake adapter dedupes on, as a real one
should.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from kanmon.gateway.adapters import AdapterDeliveryConfig, idempotency_key
from kanmon.gateway.delivery import DeliveryPolicy
from kanmon.store import Message, Store, upgrade
from kanmon.web import WebConfig, create_app
from tests.gateway_harness import Harness, process_group, running_gateway
from tests.http_serving import serving
from tests.log_lines import log_lines

SECRET = "the-channel-secret"


# ---------------------------------------------------------------------------------------------------- the fake adapter
@dataclass
class Received:
    authorization: str
    idempotency_header: str
    body: dict[str, Any]


@dataclass
class FakeAdapter:
    """An arizuko-style adapter: ``POST /send`` shows a message on its "platform", deduped on the idempotency key.

    ``status`` other than 200 refuses every request without showing anything (the adapter is down), and so does
    ``refuse`` for the texts it holds (with 503);
    ``show_then_fail`` requests are shown and then answered 500 (it failed after receiving); ``hold`` keeps
    requests waiting for an answer until it is set (the adapter hangs; only those of chat ``hold_only`` when that
    is given). ``echo`` puts the credentials it got
    into its refusals (a badly written adapter).
    """

    name: str
    status: int = 200
    show_then_fail: int = 0
    hold: asyncio.Event | None = None
    hold_only: str | None = None
    refuse: set[str] = field(default_factory=set)
    echo: bool = False
    requests: list[Received] = field(default_factory=list)
    shown: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> body, in arrival order
    ids: dict[str, str] = field(default_factory=dict)
    url: str = ""

    def app(self) -> ASGIApp:
        return Starlette(routes=[Route("/send", self._send, methods=["POST"])])

    async def _send(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(
            Received(request.headers.get("authorization", ""), request.headers.get("idempotency-key", ""), body)
        )
        if self.hold is not None and self.hold_only in (None, body["chat_jid"]):
            await self.hold.wait()
        if self.status != 200 or body["content"] in self.refuse:
            error = {"error": "down", **({"you sent": self.requests[-1].authorization} if self.echo else {})}
            return JSONResponse(error, status_code=self.status if self.status != 200 else 503)
        key = body["idempotency_key"]
        if key not in self.shown:
            self.shown[key] = body
            self.ids[key] = f"{self.name}-msg-{len(self.shown)}"
        if self.show_then_fail:
            self.show_then_fail -= 1
            return JSONResponse({"error": "crashed after sending"}, status_code=500)
        return JSONResponse({"ok": True, "id": self.ids[key]})

    def shown_texts(self) -> list[str]:
        return [body["content"] for body in self.shown.values()]


# ---------------------------------------------------------------------------------------------------- the world
FAST = AdapterDeliveryConfig(
    channel_secret=SECRET, timeout=10.0, retry_base=0.05, deadline=600.0, quick_tries=2, quick_wait=0.01
)


@dataclass
class World:
    """A served gateway, kanmon's HTTP API on a real port, and a client for it."""

    h: Harness
    api: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    async def register(self, adapter: FakeAdapter, prefixes: list[str]) -> str:
        body = {"name": adapter.name, "url": adapter.url, "jid_prefixes": prefixes, "capabilities": {"send_text": True}}
        answer = await self.api.post("/v1/channels/register", json=body, headers=bearer(SECRET))
        assert answer.status_code == 200, answer.text
        self.tokens[adapter.name] = answer.json()["token"]
        return self.tokens[adapter.name]

    async def post(self, adapter: str, **body: Any) -> dict[str, Any]:
        body.setdefault("sender", "user:1")
        answer = await self.api.post("/v1/messages", json=body, headers=bearer(self.tokens[adapter]))
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def reply_rows(self, chat_jid: str) -> list[Message]:
        return [row for row in self.h.outbound(chat_jid) if row.run_id is not None]

    def metric(self, channel: str, result: str) -> float:
        labels = {"channel": channel, "result": result}
        return self.h.gateway.metrics.registry.get_sample_value("kanmon_deliveries_total", labels) or 0.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def world(
    data_dir: Path, *adapters: FakeAdapter, delivery: AdapterDeliveryConfig = FAST, instance: str = "test"
) -> AsyncIterator[World]:
    """Fake adapters and a gateway (echo agent ``corp`` for telegram:, ``ops`` for discord:) with its API, all served.

    An adapter that has a URL already is served by the test itself (it outlives this world).
    """
    async with contextlib.AsyncExitStack() as stack:
        for adapter in adapters:
            if not adapter.url:
                adapter.url = await stack.enter_async_context(serving(adapter.app()))
        h = await stack.enter_async_context(
            running_gateway(
                data_dir, [process_group("corp"), process_group("ops")], poll_interval=0.2, instance=instance
            )
        )
        if not h.store.list_routes():
            h.store.add_route(seq=0, match="platform=telegram", target="corp")
            h.store.add_route(seq=1, match="platform=discord", target="ops")
        h.gateway.configure_adapters(delivery)
        url = await stack.enter_async_context(serving(create_app(h.gateway, WebConfig(channel_secret=SECRET))))
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        try:
            yield World(h, api)
        finally:
            for adapter in adapters:  # nothing may hang the servers' shutdown
                if adapter.hold is not None:
                    adapter.hold.set()


# ---------------------------------------------------------------------------------------------------- the tests
async def test_a_reply_reaches_the_adapter_and_its_row_is_marked_sent(tmp_path: Path) -> None:
    tg = FakeAdapter("tg")
    async with world(tmp_path / "data", tg) as w:
        await w.register(tg, ["telegram:"])
        posted = await w.post("tg", id="m-1", chat_jid="telegram:42", content="hello", topic="77")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:42")] == ["sent"], "delivery")

        [row] = w.reply_rows("telegram:42")
        assert len(tg.requests) == 1
        [request] = tg.requests
        assert request.body == {
            "chat_jid": "telegram:42",
            "content": "echo: hello",
            "format": "markdown",
            "reply_to": "m-1",
            "thread_id": "77",
            "idempotency_key": idempotency_key("test", row),
        }
        assert request.authorization == f"Bearer {SECRET}"
        assert request.idempotency_header == idempotency_key("test", row)
        assert (row.delivery_status, row.delivery_attempts, row.platform_message_id) == ("sent", 1, "tg-msg-1")
        assert row.is_bot_message  # the reply is kanmon speaking
        [inbound] = w.h.inbound("telegram:42")
        assert (inbound.seq, inbound.id, inbound.origin) == (posted["seq"], "m-1", "adapter:tg")
        assert w.h.store.get_chat("telegram:42").channel == "tg"  # type: ignore[union-attr]
        assert w.metric("tg", "sent") == 1


async def test_a_reply_goes_to_the_adapter_its_chat_came_from(tmp_path: Path) -> None:
    first, second = FakeAdapter("tg-a"), FakeAdapter("tg-b")
    async with world(tmp_path / "data", first, second) as w:
        # two bots of one platform, each owning its own part of it (a prefix belongs to one adapter at a time)
        await w.register(first, ["telegram:a:"])
        await w.register(second, ["telegram:b:"])
        await w.post("tg-b", id="m-1", chat_jid="telegram:b:7", content="via b")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:b:7")] == ["sent"], "delivery")
        assert second.shown_texts() == ["echo: via b"]
        assert first.requests == []


async def test_delivery_is_retried_while_the_adapter_answers_503_and_succeeds_once_it_recovers(
    tmp_path: Path,
) -> None:
    tg = FakeAdapter("tg", status=503)
    async with world(tmp_path / "data", tg) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:1", content="are you there")

        def failed_three_times() -> bool:
            rows = w.reply_rows("telegram:1")
            return len(rows) == 1 and rows[0].delivery_attempts >= 3

        await w.h.wait_for(failed_three_times, "three failed attempts")
        [row] = w.reply_rows("telegram:1")
        assert row.delivery_status == "pending"
        assert row.deliver_after is not None and row.deliver_after > row.received_at
        assert "answered 503" in (row.delivery_error or "")
        attempts = row.delivery_attempts
        assert len(tg.requests) >= 2 * attempts  # two quick tries within every attempt
        assert tg.shown == {}

        tg.status = 200
        await w.h.wait_for(lambda: w.reply_rows("telegram:1")[0].delivery_status == "sent", "the delivery")
        [row] = w.reply_rows("telegram:1")
        assert row.delivery_attempts > attempts and row.delivery_error is None
        assert tg.shown_texts() == ["echo: are you there"]
        assert {r.body["idempotency_key"] for r in tg.requests} == {
            idempotency_key("test", row)
        }  # the same key every time
        assert w.metric("tg", "pending") >= 3 and w.metric("tg", "sent") == 1


async def test_a_chat_s_replies_go_out_in_order_and_a_stuck_chat_holds_up_no_other(tmp_path: Path) -> None:
    tg = FakeAdapter("tg", refuse={"echo: first"})
    async with world(tmp_path / "data", tg) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:1", content="first")
        await w.h.wait_for(lambda: len(w.reply_rows("telegram:1")) == 1, "the first reply")
        await w.post("tg", id="m-2", chat_jid="telegram:1", content="second")
        await w.h.wait_for(lambda: len(w.reply_rows("telegram:1")) == 2, "the second reply")
        await w.post("tg", id="m-3", chat_jid="telegram:2", content="elsewhere")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:2")] == ["sent"], "delivery")
        await w.h.wait_for(lambda: w.reply_rows("telegram:1")[0].delivery_attempts >= 3, "three failed attempts")

        first, second = w.reply_rows("telegram:1")
        assert (first.delivery_status, second.delivery_status, second.delivery_attempts) == ("pending", "pending", 0)
        assert tg.shown_texts() == ["echo: elsewhere"]  # the second reply did not overtake the first

        tg.refuse.clear()
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:1")] == ["sent"] * 2, "both")
        assert tg.shown_texts() == ["echo: elsewhere", "echo: first", "echo: second"]


async def test_a_chat_whose_send_hangs_holds_up_no_other_chat_of_the_adapter(tmp_path: Path) -> None:
    tg = FakeAdapter("tg", hold=asyncio.Event(), hold_only="telegram:1")
    async with world(tmp_path / "data", tg) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:1", content="a big upload")
        await w.h.wait_for(lambda: len(tg.requests) == 1, "the send that hangs")
        await w.post("tg", id="m-2", chat_jid="telegram:2", content="one")
        await w.h.wait_for(lambda: len(tg.shown) == 1, "the other chat's reply")
        await w.post("tg", id="m-3", chat_jid="telegram:2", content="two")  # after the pass that found the hang
        await w.h.wait_for(lambda: len(tg.shown) == 2, "the other chat's next reply")
        assert [r.delivery_status for r in w.reply_rows("telegram:1")] == ["pending"]

        assert tg.hold is not None
        tg.hold.set()
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:1")] == ["sent"], "the upload")
        assert tg.shown_texts() == ["echo: one", "echo: two", "echo: a big upload"]
        assert len(tg.requests) == 3


async def test_a_reply_stored_while_gated_drains_still_reaches_the_adapter(tmp_path: Path) -> None:
    """Stopping, gated lets the run in flight finish (the drain); the reply it stores then goes out before gated
    exits, in the gateway's last delivery pass (the delivery worker itself has stopped by then)."""
    data = tmp_path / "data"
    data.mkdir()
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    upgrade(store.engine)
    store.add_group(process_group("corp", env={"ECHO_DELAY": 1.0}))  # the world's echo agent, a second slower
    store.close()
    tg = FakeAdapter("tg")
    async with world(data, tg) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:1", content="late")
        await w.h.wait_for(lambda: bool(w.h.store.runs_in_flight()), "the run to begin")
        assert tg.shown == {}
    assert tg.shown_texts() == ["echo: late"]


async def test_nothing_is_shown_twice_when_the_adapter_fails_after_receiving(tmp_path: Path) -> None:
    tg = FakeAdapter("tg", show_then_fail=1)
    once = AdapterDeliveryConfig(channel_secret=SECRET, retry_base=0.05, quick_tries=1)  # the retry is a new pass
    async with world(tmp_path / "data", tg, delivery=once) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:1", content="just once")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:1")] == ["sent"], "delivery")

        [row] = w.reply_rows("telegram:1")
        assert len(tg.requests) == 2
        first, second = (r.body for r in tg.requests)
        assert first == second  # the same key, the same everything
        assert tg.shown_texts() == ["echo: just once"]
        assert (row.delivery_attempts, row.platform_message_id) == (2, "tg-msg-1")


async def test_a_pending_reply_survives_a_restart_and_goes_out_after_it(tmp_path: Path) -> None:
    tg = FakeAdapter("tg", status=503)
    async with serving(tg.app()) as tg.url:
        async with world(tmp_path / "data", tg) as w:
            await w.register(tg, ["telegram:"])
            await w.post("tg", id="m-1", chat_jid="telegram:1", content="while down")
            await w.h.wait_for(lambda: any(r.delivery_attempts for r in w.reply_rows("telegram:1")), "a failed try")
            assert [r.delivery_status for r in w.reply_rows("telegram:1")] == ["pending"]
        assert tg.shown == {}

        tg.status = 200
        async with world(tmp_path / "data", tg) as w:  # the same store: a restarted gated
            await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:1")] == ["sent"], "delivery")
            [row] = w.reply_rows("telegram:1")
            assert tg.shown_texts() == ["echo: while down"]
            assert {r.body["idempotency_key"] for r in tg.requests} == {idempotency_key("test", row)}
            assert w.metric("tg", "sent") == 1


async def test_a_gated_of_another_instance_taking_over_resends_a_reply_under_the_key_it_had(tmp_path: Path) -> None:
    """A standby on another machine, run with an --instance of its own, takes the store over: a reply the first
    gated may have sent already goes out again under the key the adapter saw, so the adapter can drop it. Before,
    the key was the sending gated's instance name (an outside review)."""
    tg = FakeAdapter("tg", status=503)
    async with serving(tg.app()) as tg.url:
        async with world(tmp_path / "data", tg) as w:
            await w.register(tg, ["telegram:"])
            await w.post("tg", id="m-1", chat_jid="telegram:1", content="during the failover")
            await w.h.wait_for(lambda: any(r.delivery_attempts for r in w.reply_rows("telegram:1")), "a failed try")
        tg.status = 200
        async with world(tmp_path / "data", tg, instance="standby") as w:
            await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:1")] == ["sent"], "delivery")
            [row] = w.reply_rows("telegram:1")
            assert {r.body["idempotency_key"] for r in tg.requests} == {idempotency_key("test", row)}


async def test_an_adapter_that_echoes_the_channel_secret_does_not_get_it_into_the_store(tmp_path: Path) -> None:
    """``delivery_error`` keeps the adapter's answer (SPEC §14: secrets never in the store), so it is redacted."""
    for status, outcome in ((503, "pending"), (400, "failed")):  # a failure retried, then one final at once
        echoing = FakeAdapter(f"echo-{status}", status=status, echo=True)
        async with world(tmp_path / f"data-{status}", echoing) as w:
            await w.register(echoing, ["telegram:"])
            await w.post(echoing.name, id="m-1", chat_jid="telegram:1", content="hi")

            def errors() -> list[str]:
                return [row.delivery_error or "" for row in w.reply_rows("telegram:1") if row.delivery_error]

            await w.h.wait_for(lambda: bool(errors()), "a failed attempt")
            [row] = w.reply_rows("telegram:1")
            assert row.delivery_status == outcome and f"{status}" in errors()[0] and '"down"' in errors()[0]
            assert SECRET not in errors()[0] and "[redacted]" in errors()[0]
            assert all(request.authorization == f"Bearer {SECRET}" for request in echoing.requests)  # it was sent


async def test_a_refusing_adapter_fails_its_row_while_a_hanging_one_holds_up_no_other(tmp_path: Path) -> None:
    refusing = FakeAdapter("refusing", status=400)
    hanging = FakeAdapter("hanging", hold=asyncio.Event())
    healthy = FakeAdapter("healthy")
    patient = AdapterDeliveryConfig(channel_secret=SECRET, timeout=300.0, quick_tries=1)  # longer than any wait here
    async with world(tmp_path / "data", refusing, hanging, healthy, delivery=patient) as w:
        await w.register(hanging, ["telegram:h:"])
        await w.register(refusing, ["discord:"])
        await w.post("hanging", id="m-1", chat_jid="telegram:h:1", content="to the hanging one")
        await w.h.wait_for(lambda: len(hanging.requests) == 1, "the hanging adapter to receive its request")

        # registered while the other's delivery hangs; its reply must not wait for it
        await w.register(healthy, ["telegram:ok:"])  # its own part of telegram
        await w.post("healthy", id="m-2", chat_jid="telegram:ok:2", content="to the healthy one")
        await w.post("refusing", id="m-3", chat_jid="discord:3", content="to the refusing one")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:ok:2")] == ["sent"], "delivery")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("discord:3")] == ["failed"], "a failure")

        assert healthy.shown_texts() == ["echo: to the healthy one"]
        assert [r.delivery_status for r in w.reply_rows("telegram:h:1")] == ["pending"]  # still waiting for an answer
        [refused] = w.reply_rows("discord:3")
        assert refused.delivery_attempts == 1 and "refused the message: 400" in (refused.delivery_error or "")
        assert len(refusing.requests) == 1  # a 4xx is not retried
        assert w.metric("refusing", "failed") == 1

        assert hanging.hold is not None
        hanging.hold.set()
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:h:1")] == ["sent"], "delivery")
        assert hanging.shown_texts() == ["echo: to the hanging one"]


async def test_a_reply_still_failing_at_the_deadline_fails_with_a_metric_and_a_log_line(tmp_path: Path) -> None:
    tg = FakeAdapter("tg", status=502)
    short = AdapterDeliveryConfig(channel_secret=SECRET, retry_base=0.05, deadline=1.0, quick_tries=1)
    with log_lines("kanmon.gateway.delivery", logging.WARNING) as logged:
        async with world(tmp_path / "data", tg, delivery=short) as w:
            await w.register(tg, ["telegram:"])
            await w.post("tg", id="m-1", chat_jid="telegram:1", content="never arrives")
            await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:1")] == ["failed"], "failure")
            [row] = w.reply_rows("telegram:1")
            assert row.delivery_attempts >= 2 and "answered 502" in (row.delivery_error or "")
            assert w.metric("tg", "failed") == 1
            assert tg.shown == {}
    [failure] = logged.matching("failed for good")
    assert f"seq={row.seq}" in failure["message"]
    assert (failure["channel"], failure["chat"], failure["attempt"]) == ("tg", "telegram:1", row.delivery_attempts)
    assert SECRET not in json.dumps(logged.entries)


def test_the_backoff_grows_with_each_attempt_and_is_capped() -> None:
    policy = DeliveryPolicy(retry_base=1.0, max_backoff=60.0, deadline=None)
    rng = random.Random(7)  # jitter comes from an injected source
    for attempts, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        for _ in range(20):
            assert base <= policy.backoff(attempts, rng) <= base * 1.25
    assert policy.backoff(40, rng) == 60.0
    assert DeliveryPolicy().backoff(5, rng) == 0.0  # no base: the next pass retries
    assert [policy.backoff(3, random.Random(1)) for _ in range(2)] == [policy.backoff(3, random.Random(1))] * 2
