"""``daemon:<name>`` route targets (SPEC §6.4): the message is POSTed to the daemon's configured URL.

The loop writes each message a route sends to a daemon into that daemon's outbox (an outbound row of the chat
``daemon:<name>``); the delivery worker POSTs it with the same machinery as channel adapters: an idempotency key
that is the same on every retry and after a restart, quick tries, a growing backoff, ``failed`` past the deadline,
``kanmon_deliveries_total{channel="daemon:<name>"}``. Here the daemon is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from kanmon.gateway.adapters import AdapterDeliveryConfig, idempotency_key
from kanmon.store import Message
from tests.gateway_harness import Harness, process_group, running_gateway
from tests.http_serving import serving

SECRET = "the-channel-secret"
FAST = AdapterDeliveryConfig(
    channel_secret=SECRET, timeout=10.0, retry_base=0.05, deadline=600.0, quick_tries=2, quick_wait=0.01
)


@dataclass
class Request_:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeDaemon:
    """A daemon at ``/hook``: answers ``{"ok": true, "id": …}``, or ``status`` when that is not 200."""

    status: int = 200
    requests: list[Request_] = field(default_factory=list)
    url: str = ""

    def app(self) -> ASGIApp:
        return Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> JSONResponse:
        self.requests.append(Request_(dict(request.headers), await request.json()))
        if self.status != 200:
            return JSONResponse({"error": "down"}, status_code=self.status)
        return JSONResponse({"ok": True, "id": f"hook-{len(self.requests)}"})

    def keys(self) -> list[str]:
        return [r.body["idempotency_key"] for r in self.requests]


@contextlib.asynccontextmanager
async def world(data_dir: Path, daemon: FakeDaemon, delivery: AdapterDeliveryConfig = FAST) -> AsyncIterator[Harness]:
    """A gateway whose routes send alice's messages in telegram: chats to ``daemon:hook`` (``corp`` owns them)."""
    async with running_gateway(
        data_dir, [process_group("corp")], poll_interval=0.2, daemons={"hook": f"{daemon.url}/hook"}
    ) as h:
        if not h.store.list_routes():
            h.store.add_route(seq=0, match="platform=telegram sender=alice", target="daemon:hook")
            h.store.add_route(seq=1, match="platform=telegram", target="corp")
        h.gateway.configure_adapters(delivery)
        yield h


def outbox(h: Harness) -> list[Message]:
    return h.outbound("daemon:hook")


def statuses(h: Harness) -> list[str | None]:
    return [row.delivery_status for row in outbox(h)]


def metric(h: Harness, result: str) -> float:
    labels = {"channel": "daemon:hook", "result": result}
    return h.gateway.metrics.registry.get_sample_value("kanmon_deliveries_total", labels) or 0.0


async def test_a_message_routed_to_a_daemon_is_posted_to_its_url_as_the_original_message(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    async with serving(daemon.app()) as daemon.url, world(tmp_path / "data", daemon) as h:
        sent_at = dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.UTC)
        original = await h.send(
            "telegram:42",
            "hello daemon",
            id="m-7",
            sender="alice",
            sender_name="Alice",
            topic="77",
            timestamp=sent_at,
            reply_to_id="m-6",
            reply_to_text="earlier",
            reply_to_sender="bob",
            attachments=[{"kind": "image", "url": "https://example.org/a.png"}],
        )
        await h.wait_for(lambda: statuses(h) == ["sent"], "the daemon delivery")

        [row] = outbox(h)
        [request] = daemon.requests
        key = idempotency_key("test", row)
        assert request.body == {
            "chat_jid": "telegram:42",
            "id": "m-7",
            "seq": original.seq,
            "sender": "alice",
            "sender_name": "Alice",
            "content": "hello daemon",
            "verb": "message",
            "topic": "77",
            "timestamp": "2026-03-01T12:30:05Z",
            "reply_to": "m-6",
            "reply_to_text": "earlier",
            "reply_to_sender": "bob",
            "attachments": [{"kind": "image", "url": "https://example.org/a.png"}],
            "is_bot_message": False,
            "daemon": "hook",
            "idempotency_key": key,
        }
        assert request.headers["idempotency-key"] == key
        assert "authorization" not in request.headers  # the channel secret is not a daemon's to see
        assert (row.delivery_attempts, row.platform_message_id, row.is_bot_message) == (1, "hook-1", True)
        assert h.inbound("telegram:42")[0].status == "done"  # the daemon took it; no agent runs
        assert h.replies() == []
        assert metric(h, "sent") == 1


async def test_a_failing_daemon_is_retried_with_backoff_then_failed_at_the_deadline(tmp_path: Path) -> None:
    daemon = FakeDaemon(status=503)
    short = AdapterDeliveryConfig(retry_base=0.2, deadline=2.0, quick_tries=2, quick_wait=0.01)
    async with serving(daemon.app()) as daemon.url, world(tmp_path / "data", daemon, short) as h:
        await h.send("telegram:1", "anyone there", sender="alice")
        await h.wait_for(lambda: any(row.delivery_attempts for row in outbox(h)), "a failed attempt")
        [row] = outbox(h)
        assert row.delivery_status == "pending" and "answered 503" in (row.delivery_error or "")
        assert row.deliver_after is not None and row.deliver_after > row.received_at  # backing off

        await h.wait_for(lambda: statuses(h) == ["failed"], "the row to fail at the deadline")
        [row] = outbox(h)
        assert row.delivery_attempts >= 2
        assert len(daemon.requests) >= 2 * row.delivery_attempts  # two quick tries in every attempt
        assert set(daemon.keys()) == {idempotency_key("test", row)}  # the same key every time
        assert metric(h, "failed") == 1 and metric(h, "pending") == row.delivery_attempts - 1


async def test_a_pending_daemon_message_goes_out_after_a_restart(tmp_path: Path) -> None:
    daemon = FakeDaemon(status=503)
    async with serving(daemon.app()) as daemon.url:
        async with world(tmp_path / "data", daemon) as h:
            await h.send("telegram:1", "while down", sender="alice")
            await h.wait_for(lambda: any(row.delivery_attempts for row in outbox(h)), "a failed attempt")
            assert statuses(h) == ["pending"]

        daemon.status = 200
        async with world(tmp_path / "data", daemon) as h:  # the same store: a restarted gated
            await h.wait_for(lambda: statuses(h) == ["sent"], "the delivery after the restart")
            [row] = outbox(h)
            assert set(daemon.keys()) == {idempotency_key("test", row)}
            assert daemon.requests[-1].body["content"] == "while down"


async def test_a_message_the_daemon_took_is_never_posted_again(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    async with serving(daemon.app()) as daemon.url:
        async with world(tmp_path / "data", daemon) as h:
            await h.send("telegram:1", "first", sender="alice")
            await h.wait_for(lambda: statuses(h) == ["sent"], "the first delivery")
        async with world(tmp_path / "data", daemon) as h:  # a restart reads the outbox again
            await h.send("telegram:1", "second", sender="alice")
            await h.wait_for(lambda: statuses(h) == ["sent", "sent"], "the second delivery")
            h.gateway.wake()
            await h.gateway.delivery.deliver_due()
            first, second = outbox(h)
        assert daemon.keys() == [idempotency_key("test", first), idempotency_key("test", second)]
        assert [r.body["content"] for r in daemon.requests] == ["first", "second"]


async def test_a_daemon_whose_name_begins_another_s_gets_only_its_own_messages(tmp_path: Path) -> None:
    hook, hook2 = FakeDaemon(), FakeDaemon()
    async with serving(hook.app()) as hook.url, serving(hook2.app()) as hook2.url:
        daemons = {"hook": f"{hook.url}/hook", "hook-2": f"{hook2.url}/hook"}
        async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.2, daemons=daemons) as h:
            h.store.add_route(seq=0, match="platform=telegram sender=alice", target="daemon:hook-2")
            h.store.add_route(seq=1, match="platform=telegram sender=bob", target="daemon:hook")
            h.store.add_route(seq=2, match="platform=telegram", target="corp")
            h.gateway.configure_adapters(FAST)
            await h.send("telegram:1", "for hook-2", sender="alice")
            await h.send("telegram:1", "for hook", sender="bob")
            await h.wait_for(lambda: [r.delivery_status for r in h.outbound("daemon:hook-2")] == ["sent"], "hook-2")
            await h.wait_for(lambda: statuses(h) == ["sent"], "hook")
        assert [r.body["content"] for r in hook.requests] == ["for hook"]
        assert [r.body["content"] for r in hook2.requests] == ["for hook-2"]


async def test_credentials_in_a_daemon_s_url_are_sent_as_basic_auth_and_never_stored(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    async with serving(daemon.app()) as base:
        host = base.removeprefix("http://")
        daemons = {"hook": f"http://kanmon:pw-s3cret@{host}/hook", "gone": "http://kanmon:pw-s3cret@127.0.0.1:9/x"}
        async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.2, daemons=daemons) as h:
            h.store.add_route(seq=0, match="platform=telegram sender=alice", target="daemon:hook")
            h.store.add_route(seq=1, match="platform=telegram sender=bob", target="daemon:gone")
            h.store.add_route(seq=2, match="platform=telegram", target="corp")
            h.gateway.configure_adapters(FAST)
            await h.send("telegram:1", "hi", sender="alice")
            await h.send("telegram:1", "hi", sender="bob")
            await h.wait_for(lambda: statuses(h) == ["sent"], "the delivery")
            await h.wait_for(lambda: any(r.delivery_error for r in h.outbound("daemon:gone")), "a failed attempt")
            [failed] = h.outbound("daemon:gone")
    assert daemon.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"kanmon:pw-s3cret").decode()
    assert "unreachable at http://127.0.0.1:9/x" in (failed.delivery_error or "")
    assert "s3cret" not in (failed.delivery_error or "")
