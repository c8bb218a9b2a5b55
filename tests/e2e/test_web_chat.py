"""The built-in web chat's HTTP API against a running gateway: posting, the SSE stream and its replay, topics, tokens.

The API tests drive the app in process (httpx's ASGI transport); the stream tests need a real server, because the
ASGI transport hands a response over only once it is complete, and an event stream never is. Those serve the app with
uvicorn on 127.0.0.1 (a free port) in the test's own event loop, next to the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI

from kanmon.clock import SystemClock
from kanmon.gated.cli import cli
from kanmon.gateway.feed import ChatFeed
from kanmon.gateway.runner import DEAD_LETTER_TEXT
from kanmon.gateway.typing import TypingSignal
from kanmon.queue import RetryPolicy
from kanmon.serving import EmbeddedServer, tcp_listener
from kanmon.store import Message, NewMessage, Store, upgrade
from kanmon.store.aio import AsyncStore
from kanmon.web import WebConfig, create_app, webchat
from kanmon.web.tokens import token_hash
from tests.gated_process import reap
from tests.gateway_harness import Harness, process_group, running_gateway

TOKEN = "corp-web-token-for-tests"
OTHER_TOKEN = "other-web-token-for-tests"
TIMEOUT = 60.0


def anon(ip: str) -> str:
    return f"web:anon-{hashlib.sha256(ip.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------------------ helpers


@contextlib.asynccontextmanager
async def serve_http(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) in this event loop; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off", timeout_graceful_shutdown=5)
    sock = tcp_listener("127.0.0.1", 0, backlog=128)  # not Config.bind_socket: see tcp_listener
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn ended before it started"
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        sock.close()


@contextlib.asynccontextmanager
async def web_chat(
    tmp_path: Path, config: WebConfig | None = None, **groups_env: dict[str, Any]
) -> AsyncIterator[tuple[Harness, FastAPI]]:
    """A gateway with the echo group ``corp`` (web token TOKEN), any ``groups_env`` groups (token OTHER_TOKEN)."""
    groups = [process_group("corp"), *(process_group(name, env) for name, env in groups_env.items())]
    retry = RetryPolicy(max_attempts=3, base_delay=0.05)
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.2, retry=retry) as h:
        h.store.set_group_web_token("corp", token_hash(TOKEN))
        for name in groups_env:
            h.store.set_group_web_token(name, token_hash(OTHER_TOKEN))
        yield h, create_app(h.gateway, config or WebConfig())


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kanmon", timeout=TIMEOUT)


@dataclass
class Stream:
    """One open event stream: its events (``event_id``, ``event``, and the fields of ``data``) and comments."""

    response: httpx.Response
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    working: list[dict[str, Any]] = field(default_factory=list)  # `working` events (no id), after `len(events)`
    retry: int | None = None
    _lines: AsyncIterator[str] | None = None

    async def _next_block(self) -> None:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                break
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        else:
            raise AssertionError("the stream ended")
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if fields.get("event") == "working":
            assert "id" not in fields  # not a row: a reconnect must not resume after it
            self.working.append({"after": len(self.events), **json.loads(fields["data"])})
        elif "data" in fields:
            data = json.loads(fields["data"])
            assert fields["id"] == str(data["seq"])
            self.events.append({"event_id": int(fields["id"]), "event": fields["event"], **data})

    async def until(self, condition: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        """Read until ``condition(events)`` holds; fail naming ``what`` after TIMEOUT."""
        try:
            async with asyncio.timeout(TIMEOUT):
                while not condition(self.events):
                    await self._next_block()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got {self.events}") from None
        return self.events

    async def until_content(self, content: str) -> list[dict[str, Any]]:
        return await self.until(lambda events: any(e["content"] == content for e in events), repr(content))


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, folder: str, token: str = TOKEN, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[Stream]:
    query = {"token": token, **params}
    async with client.stream("GET", f"/web/{folder}/stream", params=query, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


async def post(client: httpx.AsyncClient, content: str, topic: str, folder: str = "corp", token: str = TOKEN) -> int:
    response = await client.post(
        f"/web/{folder}/messages", json={"content": content, "topic": topic}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and set(body) == {"ok", "seq", "id"}
    return int(body["seq"])


def topic_rows(store: Store, topic: str, after: int = 0, chat: str = "web:corp") -> list[Message]:
    return store.chat_messages(chat, after, topic=topic, limit=10_000)


# ------------------------------------------------------------------------------------------------ posting
async def test_a_posted_message_and_the_echo_reply_arrive_in_the_topic_stream(tmp_path: Path) -> None:
    async with (
        web_chat(tmp_path) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client,
    ):
        async with open_stream(client, "corp", topic="t-1") as stream:
            seq = await post(client, "hello\nsecond line", "t-1")
            events = await stream.until_content("echo: hello\nsecond line")

        stored = h.store.new_messages(0)
        user = next(m for m in stored if m.seq == seq)
        assert (user.chat_jid, user.topic, user.origin, user.direction) == ("web:corp", "t-1", "web", "in")
        assert (user.sender, user.sender_name) == (anon("127.0.0.1"), "Anonymous")
        assert [(e["seq"], e["role"], e["direction"], e["content"]) for e in events] == [
            (seq, "user", "in", "hello\nsecond line"),
            (events[1]["seq"], "assistant", "out", "echo: hello\nsecond line"),
        ]
        assert events[0] == {
            "event_id": seq,
            "event": "message",
            "seq": seq,
            "id": user.id,
            "direction": "in",
            "role": "user",
            "sender": anon("127.0.0.1"),
            "sender_name": "Anonymous",
            "content": "hello\nsecond line",
            "topic": "t-1",
            "time": user.timestamp.isoformat(),
            "attachments": [],
        }
        assert stream.retry == webchat.RETRY_MS


async def test_the_trusted_proxy_header_names_the_sender_and_anonymous_senders_are_hashed(tmp_path: Path) -> None:
    async with web_chat(tmp_path, WebConfig(trusted_sender_header="X-User-Sub")) as (h, app):
        async with asgi_client(app) as client:
            named = await client.post(
                "/web/corp/messages", json={"content": "hi"}, headers={**bearer(), "X-User-Sub": "alice@example.org"}
            )
            nameless = await client.post("/web/corp/messages", json={"content": "hi"}, headers=bearer())
            raw = [(b"authorization", bearer()["Authorization"].encode()), (b"x-user-sub", "jörg\t".encode())]
            utf8 = await client.post("/web/corp/messages", json={"content": "hi"}, headers=raw)
        rows = {m.seq: m for m in h.inbound("web:corp")}
        assert (rows[named.json()["seq"]].sender, rows[named.json()["seq"]].sender_name) == (
            "web:alice@example.org",
            "alice@example.org",
        )
        assert rows[named.json()["seq"]].topic == ""
        assert rows[utf8.json()["seq"]].sender == "web:jörg"  # UTF-8 bytes read as UTF-8, control characters dropped
        # httpx's ASGI transport presents the client as 127.0.0.1
        assert rows[nameless.json()["seq"]].sender == anon("127.0.0.1")


REFUSED = {"detail": "missing or wrong web token (`gated group web-token FOLDER` makes one)"}
WRONG_CREDENTIALS = [
    {},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {OTHER_TOKEN}"},  # another group's
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {token_hash('')}"},  # the hash a group without a token would not match either
]


async def unauthenticated(client: httpx.AsyncClient, folder: str, headers: dict[str, str]) -> list[httpx.Response]:
    """Each endpoint of the web chat API asked about ``folder`` with ``headers``: post, topics, stream (2 ways)."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    return [
        await client.post(f"/web/{folder}/messages", json={"content": "let me in"}, headers=headers),
        await client.get(f"/web/{folder}/topics", headers=headers),
        await client.get(f"/web/{folder}/stream", headers=headers),
        # the same token in the stream's query (a Basic one is not a token there either: left out)
        await client.get(f"/web/{folder}/stream", params={"token": token} if scheme == "Bearer" else {}),
    ]


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS)
async def test_a_missing_or_wrong_token_is_401_and_nothing_is_stored(tmp_path: Path, headers: dict[str, str]) -> None:
    async with web_chat(tmp_path, other={}) as (h, app), asgi_client(app) as client:
        before = h.store.max_seq()
        for response in await unauthenticated(client, "corp", headers):
            assert (response.status_code, response.json()) == (401, REFUSED)
            assert response.headers["www-authenticate"] == "Bearer"
        assert h.store.max_seq() == before


async def test_a_group_without_a_web_token_refuses_every_token(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:
        h.store.add_group(process_group("closed"))
        response = await client.post("/web/closed/messages", json={"content": "x"}, headers=bearer(token_hash("")))
        assert (response.status_code, response.json()) == (401, REFUSED)
        assert h.store.max_seq() == 0


async def test_without_its_token_a_folder_that_exists_looks_exactly_like_one_that_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same status, body and headers, and the same work (as many constant-time comparisons), known folder or not."""
    compared: list[int] = []
    real_compare = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        compared.append(1)
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    # corp has a token, closed has none, other's token is one of the wrong credentials; the rest do not exist
    folders = ["corp", "closed", "nobody", "corp/eng", "a/b/c"]
    async with web_chat(tmp_path, other={}) as (h, app), asgi_client(app) as client:
        h.store.add_group(process_group("closed"))
        for headers in WRONG_CREDENTIALS:
            answers: dict[tuple[str, int], set[Any]] = {}
            for folder in folders:
                compared.clear()
                responses = await unauthenticated(client, folder, headers)
                for n, response in enumerate(responses):
                    seen = (response.status_code, response.content, response.headers.get("www-authenticate"))
                    answers.setdefault(("answer", n), set()).add(seen)
                answers.setdefault(("comparisons", 0), set()).add(len(compared))
            for what, variants in answers.items():
                assert len(variants) == 1, (headers, what, variants)
        assert h.store.max_seq() == 0


async def test_a_malformed_folder_is_404_and_the_page_is_the_same_for_any_valid_folder(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:
        for folder in ("Corp", "a..b", "-x", "a//b", "x" * 64):
            posted = await client.post(f"/web/{folder}/messages", json={"content": "x"}, headers=bearer())
            listed = await client.get(f"/web/{folder}/topics", headers=bearer())
            streamed = await client.get(f"/web/{folder}/stream", params={"token": TOKEN})
            page = await client.get(f"/chat/{folder}")
            statuses = [r.status_code for r in (posted, listed, streamed, page)]
            assert statuses == [404, 404, 404, 404], (folder, statuses)
            assert "not a valid folder name" in posted.json()["detail"]
        assert (await client.get("/chat-assets/chat.html")).status_code == 404

        # the page is static: whether the group exists is the API's to say, and only to its token's holder
        known = await client.get("/chat/corp")
        for folder in ("nobody", "corp/eng"):
            page = await client.get(f"/chat/{folder}")
            assert page.status_code == 200
            assert {**page.headers, "content-length": ""} == {**known.headers, "content-length": ""}
            assert page.text.replace(folder, "corp") == known.text
        assert h.store.max_seq() == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "json"),
        (b"[1, 2]", "dict"),
        (b"{}", "content"),
        (b'{"content": ""}', "content"),
        (b'{"content": "  \\n\\t "}', "content is empty"),
        (b'{"content": 5}', "string"),
        (b'{"content": null}', "string"),
        (b'{"content": "a\\u0000b"}', "NUL"),
        (b'{"content": "\\ud800"}', "unicode"),
        (b'{"content": "hi", "topic": "has space"}', "pattern"),
        (b'{"content": "hi", "topic": "-leading-dash"}', "pattern"),
        (b'{"content": "hi", "topic": "' + b"t" * 65 + b'"}', "pattern"),
        (b'{"content": "hi", "topic": 7}', "string"),
        (b'{"content": "hi", "sender": "mallory"}', "extra"),
    ],
)
async def test_bad_bodies_are_422_with_a_reason_and_store_nothing(tmp_path: Path, body: bytes, fragment: str) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:
        response = await client.post(
            "/web/corp/messages", content=body, headers={**bearer(), "Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert fragment.lower() in json.dumps(response.json()["detail"]).lower()
        assert h.store.max_seq() == 0


async def test_a_body_over_the_limit_is_413_and_a_draining_gated_refuses_with_503(tmp_path: Path) -> None:
    async with web_chat(tmp_path, WebConfig(max_body_bytes=256)) as (h, app), asgi_client(app) as client:
        big = await client.post("/web/corp/messages", json={"content": "x" * 300}, headers=bearer())
        assert big.status_code == 413
        app.state.draining = True
        drained = await client.post("/web/corp/messages", json={"content": "late"}, headers=bearer())
        assert drained.status_code == 503
        assert h.store.max_seq() == 0


async def test_topics_lists_the_web_chats_topics_most_recent_first(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:
        await post(client, "first", "t-a")
        await post(client, "second", "t-b")
        await post(client, "plain", "")
        await h.settled()
        await h.wait_for(lambda: len(h.replies("web:corp")) == 3, "three replies")
        # another chat's topics are not this chat's
        await h.send("web:other", "elsewhere", topic="t-x")
        response = await client.get("/web/corp/topics", headers=bearer())
        assert response.status_code == 200
        topics = response.json()["topics"]
        last = {t: topic_rows(h.store, t)[-1] for t in ("t-a", "t-b", "")}
        expected = sorted(last, key=lambda t: last[t].seq, reverse=True)
        assert [t["topic"] for t in topics] == expected
        assert all(t["messages"] == 2 for t in topics)
        assert [t["last_seq"] for t in topics] == [last[t].seq for t in expected]
        assert [t["last_time"] for t in topics] == [last[t].timestamp.isoformat() for t in expected]


# ------------------------------------------------------------------------------------------------ the stream
async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(tmp_path: Path) -> None:
    async with (
        web_chat(tmp_path) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client,
    ):
        async with open_stream(client, "corp", topic="t-r") as first:
            await post(client, "one", "t-r")
            seen = await first.until_content("echo: one")
        last_seen = seen[-1]["seq"]
        assert [e["content"] for e in seen] == ["one", "echo: one"]

        # disconnected: more is said, in this topic and others
        for text in ("two", "three"):
            await post(client, text, "t-r")
        await post(client, "not this topic", "t-other")
        await h.settled()
        await h.wait_for(lambda: len(h.replies("web:corp")) == 4, "every reply")

        async with open_stream(client, "corp", topic="t-r", headers={"Last-Event-ID": str(last_seen)}) as again:
            await again.until_content("echo: three")
            # and it goes on live: a marker said now comes after the replay
            await post(client, "four", "t-r")
            resumed = await again.until_content("echo: four")

        expected = topic_rows(h.store, "t-r", after=last_seen)
        assert [e["seq"] for e in resumed] == [m.seq for m in expected]
        assert [e["content"] for e in resumed] == [m.content for m in expected]
        assert sorted(e["content"] for e in resumed) == sorted(
            ["two", "echo: two", "three", "echo: three", "four", "echo: four"]
        )

        # `?after=` is the same resume point for a client that cannot send the header
        async with open_stream(client, "corp", topic="t-r", after=last_seen) as by_query:
            replayed = await by_query.until_content("echo: four")
        assert [e["seq"] for e in replayed] == [m.seq for m in expected]

        # a fresh stream (no resume point) starts with the topic's history
        async with open_stream(client, "corp", topic="t-r") as fresh:
            history = await fresh.until_content("echo: four")
        assert [e["seq"] for e in history] == [m.seq for m in topic_rows(h.store, "t-r")]
        assert len(history) == 8


async def test_a_fresh_stream_replays_only_the_last_messages_of_a_long_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webchat, "REPLAY_LIMIT", 3)
    monkeypatch.setattr(webchat, "REPLAY_PAGE", 2)  # a resume reads the store in pages: none is lost between them
    async with (
        web_chat(tmp_path) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client,
    ):
        # outbound rows (as another writer would leave them): nothing runs for them, they are only shown
        seqs = [
            h.store.put_message(
                NewMessage(chat_jid="web:corp", content=f"m{i}", topic="t-long", direction="out")
            ).message.seq
            for i in range(7)
        ]
        async with open_stream(client, "corp", topic="t-long") as fresh:
            tail = await fresh.until_content("m6")
        async with open_stream(client, "corp", topic="t-long", after=seqs[1]) as resumed:
            rest = await resumed.until_content("m6")
    assert [e["content"] for e in tail] == ["m4", "m5", "m6"]
    assert [e["content"] for e in rest] == ["m2", "m3", "m4", "m5", "m6"]


async def test_command_answers_and_dead_letter_apologies_appear_in_the_stream(tmp_path: Path) -> None:
    async with (
        web_chat(tmp_path, flaky={"ECHO_FAIL_RUNS": 3}) as (_h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client,
    ):
        async with open_stream(client, "corp", topic="t-cmd") as stream:
            ping = await post(client, "/ping", "t-cmd")
            events = await stream.until(lambda got: len(got) == 2, "the answer to /ping")
        assert [(e["seq"], e["role"], e["content"].split("\n")[0]) for e in events] == [
            (ping, "user", "/ping"),
            (events[1]["seq"], "assistant", "pong"),
        ]
        assert events[1]["seq"] > ping and events[1]["topic"] == "t-cmd"

        async with open_stream(client, "flaky", token=OTHER_TOKEN, topic="t-fail") as stream:
            doomed = await post(client, "this run fails", "t-fail", folder="flaky", token=OTHER_TOKEN)
            events = await stream.until_content(DEAD_LETTER_TEXT)
        assert [(e["seq"], e["role"], e["content"]) for e in events] == [
            (doomed, "user", "this run fails"),
            (events[1]["seq"], "assistant", DEAD_LETTER_TEXT),
        ]
        assert events[1]["topic"] == "t-fail"


async def test_a_malformed_last_event_id_or_topic_is_refused(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (_h, app), asgi_client(app) as client:
        for value in ("abc", "-1", "1.5", "9" * 40):
            response = await client.get("/web/corp/stream", params={"token": TOKEN}, headers={"Last-Event-ID": value})
            assert response.status_code == 400, value
            assert "Last-Event-ID" in response.json()["detail"]
        for params in ({"topic": "no spaces"}, {"after": "-1"}, {"after": str(2**63)}, {"after": "x"}):
            response = await client.get("/web/corp/stream", params={"token": TOKEN, **params})
            assert response.status_code == 422, params


async def test_an_idle_stream_sends_keep_alive_comments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webchat, "KEEPALIVE_SECONDS", 0.05)
    async with web_chat(tmp_path) as (_h, app), serve_http(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client, open_stream(client, "corp") as stream:
            await post(client, "after the keep-alives", "")
            await stream.until(lambda _: stream.comments.count("keep-alive") >= 2, "two keep-alive comments")
            events = await stream.until_content("echo: after the keep-alives")
        assert [e["content"] for e in events] == ["after the keep-alives", "echo: after the keep-alives"]


def event_ids(texts: list[str]) -> list[int]:
    ids = [re.search(r"^id: (\d+)$", text, re.M) for text in texts]
    return [int(found.group(1)) for found in ids if found is not None]


async def test_a_row_both_replayed_and_published_live_is_sent_once(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    try:

        def put(text: str) -> Message:
            return store.put_message(NewMessage(chat_jid="web:corp", content=text, topic="t")).message

        first = [put("a"), put("b")]
        feed = ChatFeed()
        typing = TypingSignal(clock=SystemClock(), interval=0.0, pinger=lambda jid: None)
        gateway: Any = SimpleNamespace(feed=feed, store=store, db=AsyncStore(store), typing=typing)
        stream = webchat.event_stream(gateway, "web:corp", "t", after=0)
        assert (await anext(stream)).startswith("retry:")  # subscribed now; the replay is read on the next step
        # stored and published by the loop in the gap between the subscription and the replay's read
        gap = put("c")
        feed.publish(gap)
        replayed = [await anext(stream) for _ in range(3)]
        assert event_ids(replayed) == [first[0].seq, first[1].seq, gap.seq]
        later = put("d")
        feed.publish(later)
        # the live copy of "c" is dropped: the next event is "d"
        assert event_ids([await anext(stream)]) == [later.seq]
        assert feed.subscribers("web:corp") == 1
        await stream.aclose()
        assert feed.subscribers("web:corp") == 0  # a closed stream (the browser left) unsubscribes
    finally:
        store.close()


def event_numbers(events: list[str]) -> list[str]:
    """The ``id:`` of each server-sent event."""
    found = [re.search(r"^id: (\d+)$", text, re.M) for text in events]
    return [match.group(1) if match is not None else "" for match in found]


async def test_a_subscriber_that_falls_behind_is_cut_off_and_its_stream_ends(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    try:
        rows = [
            store.put_message(NewMessage(chat_jid="web:corp", content=f"m{i}", topic="t")).message for i in range(4)
        ]
        feed = ChatFeed(queue_size=2)
        typing = TypingSignal(clock=SystemClock(), interval=0.0, pinger=lambda jid: None)
        gateway: Any = SimpleNamespace(feed=feed, store=store, db=AsyncStore(store), typing=typing)
        stream = webchat.event_stream(gateway, "web:corp", "t", after=rows[0].seq)
        assert (await anext(stream)).startswith("retry:")
        replayed = [await anext(stream) for _ in range(3)]
        assert event_numbers(replayed) == [str(row.seq) for row in rows[1:]]
        assert feed.subscribers("web:corp") == 1
        # published while nobody reads: two fit, the third cuts the subscriber off
        later = [
            store.put_message(NewMessage(chat_jid="web:corp", content=f"n{i}", topic="t")).message for i in range(3)
        ]
        for row in later:
            feed.publish(row)
        assert feed.subscribers("web:corp") == 0
        rest = [text async for text in stream]  # ends by itself: the browser reconnects with Last-Event-ID
        assert event_numbers(rest) == [str(row.seq) for row in later[:2]]
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------ the page
async def test_the_chat_page_holds_no_secret_and_loads_its_assets(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (_h, app), asgi_client(app) as client:
        page = await client.get("/chat/corp")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert '<meta name="viewport"' in page.text
        assert 'data-folder="corp"' in page.text and TOKEN not in page.text and "{{" not in page.text
        scripts = ("chat.js", "chat-markdown.js", "vendor/marked.umd.js", "vendor/purify.min.js")
        for asset, kind in [*((name, "text/javascript") for name in scripts), ("chat.css", "text/css")]:
            assert f"/chat-assets/{asset}" in page.text
            response = await client.get(f"/chat-assets/{asset}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        for missing in ("vendor/MANIFEST.json", "vendor/../chat.html", "../webchat.py"):
            assert (await client.get(f"/chat-assets/{missing}")).status_code == 404, missing
        schema = (await client.get("/openapi.json")).json()
        for path in ("/web/{folder}/messages", "/web/{folder}/stream", "/web/{folder}/topics", "/chat/{folder}"):
            assert path in schema["paths"], path


@pytest.mark.parametrize("path", ["/chat", "/chat/", "/chat/Not%20A%20Folder", "/chat/corp/"])
async def test_a_chat_address_without_a_group_is_a_page_saying_where_links_come_from(tmp_path: Path, path: str) -> None:
    # a person who opens the chat without a group's link (or mistyped it) gets a page, not a JSON error
    async with web_chat(tmp_path) as (_h, app), asgi_client(app) as client:
        page = await client.get(path, follow_redirects=True)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "gated group web-token" in page.text and "Not A Folder" not in page.text


# ------------------------------------------------------------------------------------------------ tokens from gated
@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False)

    return run


def printed_token(output: str) -> str:
    match = re.search(r"#token=([A-Za-z0-9_-]+)$", output, re.M)
    assert match, output
    assert f"  {match.group(1)}\n" in output  # printed on its own line too
    return match.group(1)


def test_gated_group_add_web_prints_a_token_once_and_web_token_adds_lists_revokes_and_replaces(
    gated: Callable[..., Any], tmp_path: Path
) -> None:
    added = gated("group", "add", "corp", "--web")
    assert added.exit_code == 0, added.output
    first = printed_token(added.output)
    assert "http://127.0.0.1:8080/chat/corp#token=" in added.output

    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'kanmon.db'}")
    try:
        assert store.web_token_hashes("corp") == [token_hash(first)]  # only the hash is kept

        more = gated("group", "web-token", "corp", "--label", "Ana's phone")
        assert more.exit_code == 0, more.output
        second = printed_token(more.output)
        assert second != first and len(second) >= 40
        assert store.web_token_hashes("corp") == [token_hash(first), token_hash(second)]  # nobody logged out

        listed = gated("group", "web-token", "corp", "--list")
        assert listed.exit_code == 0, listed.output
        ids = [int(line.split("\t")[0]) for line in listed.output.splitlines()]
        assert [line.split("\t")[1] for line in listed.output.splitlines()] == ["-", "Ana's phone"]
        assert first not in listed.output and second not in listed.output and token_hash(first) not in listed.output

        revoked = gated("group", "web-token", "corp", "--revoke", str(ids[0]))
        assert revoked.exit_code == 0 and f"revoked web token {ids[0]}" in revoked.output
        assert store.web_token_hashes("corp") == [token_hash(second)]
        again = gated("group", "web-token", "corp", "--revoke", str(ids[0]))
        assert again.exit_code != 0 and "no web token" in again.output

        replaced = gated("group", "web-token", "corp", "--replace")
        assert replaced.exit_code == 0 and "every other token is revoked" in replaced.output
        assert store.web_token_hashes("corp") == [token_hash(printed_token(replaced.output))]
    finally:
        store.close()
    assert "web=yes" in gated("group", "list").output
    both = gated("group", "web-token", "corp", "--list", "--revoke", "1")
    assert both.exit_code != 0 and "one at a time" in both.output

    plain = gated("group", "add", "quiet")
    assert "token" not in plain.output
    assert "web=no" in gated("group", "list").output.splitlines()[-1]
    missing = gated("group", "web-token", "nobody")
    assert missing.exit_code != 0 and "no group 'nobody'" in missing.output


def test_gated_demo_prints_a_chat_url_whose_token_works(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kanmon", "--data-dir", str(tmp_path / "data"), "demo", "--http", "127.0.0.1:0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("web chat: ") for line in lines):
            line = proc.stdout.readline()
            assert line, f"demo ended early: {lines} {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
        url = next(line for line in lines if line.startswith("web chat: ")).removeprefix("web chat: ")
        match = re.fullmatch(r"(http://127\.0\.0\.1:\d+)/chat/demo#token=([A-Za-z0-9_-]+)", url)
        assert match, url
        base, token = match.groups()
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            assert client.get("/chat/demo").status_code == 200
            sent = client.post(
                "/web/demo/messages", json={"content": "hi from the web", "topic": "t-demo"}, headers=bearer(token)
            )
            assert sent.status_code == 200, sent.text
            with client.stream("GET", "/web/demo/stream", params={"topic": "t-demo", "token": token}) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("data:") and json.loads(line[5:]).get("content") == "echo: hi from the web":
                        break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        reap(proc)
