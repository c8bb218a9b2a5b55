"""'The agent is working' over real HTTP: adapters that take typing get ``POST /typing`` while a run works.

kanmon and the fake adapters are real uvicorn servers on 127.0.0.1 and the agent is the echo agent as a process,
made slow with ``ECHO_DELAY``. An adapter that registered with ``capabilities: {"typing": true}`` gets
``{chat_jid, thread_id, on: true}`` at the run's start and every ``delivery.typing_interval`` seconds (0.4 s here)
until the first reply or the end, then one ``on: false``; one that did not declare it gets nothing; one whose
``/typing`` hangs, fails or cannot be reached never delays the run or its reply. The web chat's side (an ``event:
working`` in the topic's stream, never stored) is checked here over HTTP and in tests/e2e/test_typing_browser.py
in Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kanmon.gateway.adapters import AdapterDeliveryConfig
from kanmon.web import WebConfig, create_app
from tests.e2e.test_adapter_delivery import SECRET, bearer
from tests.e2e.test_web_chat import OTHER_TOKEN, open_stream, post, serve_http, topic_rows, web_chat
from tests.gateway_harness import Harness, process_group, running_gateway
from tests.http_serving import serving

INTERVAL = 0.4


@dataclass
class Hit:
    at: float  # time.monotonic() when it arrived
    path: str  # "/send" or "/typing"
    authorization: str
    body: dict[str, Any]


@dataclass
class TypingAdapter:
    """An adapter that shows replies (``/send``) and records typing (``/typing``, answered ``typing_status``, or held
    unanswered while ``hold`` is set)."""

    name: str
    typing_status: int = 200
    hold: bool = False
    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(path, self._hit, methods=["POST"]) for path in ("/send", "/typing")])

    async def _hit(self, request: Request) -> JSONResponse:
        hit = Hit(time.monotonic(), request.url.path, request.headers.get("authorization", ""), await request.json())
        self.hits.append(hit)
        if hit.path == "/send":
            return JSONResponse({"ok": True, "id": f"{self.name}-{len(self.hits)}"})
        if self.hold:
            await self._release.wait()
        return JSONResponse({"ok": self.typing_status == 200}, status_code=self.typing_status)

    def typing(self, chat_jid: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.path == "/typing" and chat_jid in (None, h.body["chat_jid"])]

    def sends(self, chat_jid: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.path == "/send" and chat_jid in (None, h.body["chat_jid"])]


@dataclass
class World:
    h: Harness
    api: httpx.AsyncClient

    async def register(self, adapter: TypingAdapter, capabilities: dict[str, Any]) -> str:
        body = {"name": adapter.name, "url": adapter.url, "jid_prefixes": ["telegram:"], "capabilities": capabilities}
        answer = await self.api.post("/v1/channels/register", json=body, headers=bearer(SECRET))
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token

    async def post(self, token: str, **body: Any) -> None:
        body.setdefault("sender", "user:1")
        answer = await self.api.post("/v1/messages", json=body, headers=bearer(token))
        assert answer.status_code == 200, answer.text

    def typing_metric(self, result: str) -> float:
        registry = self.h.gateway.metrics.registry
        return registry.get_sample_value("kanmon_typing_requests_total", {"result": result}) or 0.0

    def runs(self) -> int:
        return sum(self.h.store.count_runs().values())


@contextlib.asynccontextmanager
async def world(
    data_dir: Path, adapter: TypingAdapter, env: dict[str, Any], *, interval: float = INTERVAL, **config: Any
) -> AsyncIterator[World]:
    """A gateway whose group ``corp`` (the echo agent with ``env``) answers telegram:, its API, the adapter served
    (unless it has a URL already)."""
    async with contextlib.AsyncExitStack() as stack:
        if not adapter.url:
            adapter.url = await stack.enter_async_context(serving(adapter.app()))
        h = await stack.enter_async_context(
            running_gateway(data_dir, [process_group("corp", env, **config)], poll_interval=0.2)
        )
        h.store.add_route(seq=0, match="platform=telegram", target="corp")
        h.gateway.configure_adapters(
            AdapterDeliveryConfig(channel_secret=SECRET, timeout=10.0, retry_base=0.05, typing_interval=interval)
        )
        url = await stack.enter_async_context(serving(create_app(h.gateway, WebConfig(channel_secret=SECRET))))
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        try:
            yield World(h, api)
        finally:
            adapter._release.set()  # nothing may hang the servers' shutdown


def gaps(hits: list[Hit]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(hits)]


# ---------------------------------------------------------------------------------------------------- the tests
async def test_typing_goes_at_run_start_and_every_interval_until_the_first_reply_then_once_off(tmp_path: Path) -> None:
    tg = TypingAdapter("tg")
    # two seconds to the reply, then three more before the agent exits: typing stops at the reply, not the end
    async with world(tmp_path / "data", tg, {"ECHO_DELAY": 2.0, "ECHO_HANG": 3.0}) as w:
        token = await w.register(tg, {"send_text": True, "typing": True})
        posted = time.monotonic()
        await w.post(token, id="m-1", chat_jid="telegram:42", content="hello", topic="77")
        await w.h.wait_for(lambda: bool(tg.sends()), "the reply at /send")
        await asyncio.sleep(4 * INTERVAL)  # long enough for three more pings, had they not stopped
        still_running = w.h.store.runs_in_flight()
        # a ping is counted when its answer is back, a moment after the adapter saw it: wait for the last one
        await w.h.wait_for(lambda: w.typing_metric("ok") >= len(tg.typing()), "every ping's answer counted")
        ok = w.typing_metric("ok")

    typing = tg.typing()
    on, off = [h for h in typing if h.body["on"]], [h for h in typing if not h.body["on"]]
    [send] = tg.sends()
    assert send.body["content"] == "echo: hello"
    assert len(still_running) == 1
    assert all(h.body == {"chat_jid": "telegram:42", "thread_id": "77", "on": h.body["on"]} for h in typing)
    assert all(h.authorization == f"Bearer {SECRET}" for h in typing)
    # at the start (not at some later tick: the agent took two seconds), then every interval until the reply
    assert on[0].at - posted < 5.0 and send.at - on[0].at >= 1.5
    assert 3 <= len(on) <= 8, gaps(on)
    assert all(0.6 * INTERVAL <= gap <= 5 * INTERVAL for gap in gaps(on)), gaps(on)
    # then exactly one "off", and nothing after the reply
    assert len(off) == 1 and typing[-1] is off[0]
    assert not [h for h in on if h.at > send.at]
    assert ok == len(typing)


@pytest.mark.parametrize(
    "capabilities", [{"send_text": True}, {"send_text": True, "typing": False}, {"typing": "yes"}], ids=str
)
async def test_an_adapter_that_did_not_declare_typing_gets_none(tmp_path: Path, capabilities: dict[str, Any]) -> None:
    adapter = TypingAdapter("tg")
    async with world(tmp_path / "data", adapter, {"ECHO_DELAY": 1.2}) as w:
        token = await w.register(adapter, capabilities)
        await w.post(token, id="m-1", chat_jid="telegram:42", content="hello")
        await w.h.wait_for(lambda: bool(adapter.sends()), "the reply at /send")
        await asyncio.sleep(2 * INTERVAL)
    assert adapter.typing() == []
    assert len(adapter.sends()) == 1


@pytest.mark.parametrize(("mode", "result"), [("hang", "timeout"), ("fail", "refused"), ("closed", "unreachable")])
async def test_typing_that_hangs_fails_or_cannot_connect_costs_only_the_indicator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str, result: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="kanmon.gateway.typing")
    tg = TypingAdapter("tg", typing_status=500 if mode == "fail" else 200, hold=mode == "hang")
    if mode == "closed":
        with socket.socket() as sock:  # a port nobody listens on: connection refused
            sock.bind(("127.0.0.1", 0))
            tg.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with world(tmp_path / "data", tg, {"ECHO_DELAY": 2.4}) as w:
        token = await w.register(tg, {"send_text": True, "typing": True})
        await w.post(token, id="m-1", chat_jid="telegram:42", content="hello")
        await w.h.wait_for(lambda: w.h.store.count_runs().get("ok") == 1, "the run to end well")
        in_flight = w.h.store.runs_in_flight()
        failures = w.typing_metric(result)
        if mode != "closed":
            await w.h.wait_for(lambda: bool(tg.sends()), "the reply at /send")
        replies = w.h.replies("telegram:42")

    assert in_flight == []
    assert replies == ["echo: hello"]
    assert failures >= 2  # a ping every interval, each failing on its own
    on = [h for h in tg.typing() if h.body["on"]]
    # never retried: one request per interval, none right after a failure
    assert all(gap >= 0.6 * INTERVAL for gap in gaps(on)), gaps(on)
    assert len(on) <= 2.4 / INTERVAL + 3
    lines = [r for r in caplog.records if r.name == "kanmon.gateway.typing"]
    assert lines and all(r.levelno == logging.DEBUG for r in lines)


async def test_a_hanging_typing_adapter_never_holds_up_the_reply(tmp_path: Path) -> None:
    # each ping may take min(delivery.request_timeout, interval) = 10 s: the reply must not wait for one
    tg = TypingAdapter("tg", hold=True)
    async with world(tmp_path / "data", tg, {"ECHO_DELAY": 1.0}, interval=30.0) as w:
        token = await w.register(tg, {"send_text": True, "typing": True})
        posted = time.monotonic()
        await w.post(token, id="m-1", chat_jid="telegram:42", content="hello")
        await w.h.wait_for(lambda: bool(tg.typing()), "the first ping, left hanging")
        await w.h.wait_for(lambda: bool(tg.sends()), "the reply at /send", timeout=30)
        took = tg.sends()[0].at - posted
    assert took < 6.0  # the agent's second and the machinery, never a ping's ten
    assert tg.typing()[0].body["on"] is True


@pytest.mark.parametrize("ending", ["error", "timeout"])
async def test_a_run_that_fails_or_times_out_stops_its_typing(tmp_path: Path, ending: str) -> None:
    tg = TypingAdapter("tg")
    if ending == "error":  # a second of heartbeats, then exit 1 without output: retried, then dead-lettered
        env, config = {"ECHO_SILENT": 1, "ECHO_EXIT": 1, "ECHO_HEARTBEATS": 3, "ECHO_HEARTBEAT_INTERVAL": 0.3}, {}
    else:  # silent for its idle timeout before it says anything: stopped
        env, config = {"ECHO_DELAY": 30}, {"idle_timeout": 1.0, "timeout": 31.0}
    async with world(tmp_path / "data", tg, env, **config) as w:
        token = await w.register(tg, {"send_text": True, "typing": True})
        await w.post(token, id="m-1", chat_jid="telegram:42", content="hello")
        await w.h.wait_for(lambda: bool(tg.sends()), "the dead-letter apology at /send")
        await w.h.settled()
        await asyncio.sleep(3 * INTERVAL)
        runs, statuses = w.runs(), w.h.store.count_runs()
        seen = len(tg.typing())
        await asyncio.sleep(3 * INTERVAL)
        assert len(tg.typing()) == seen  # no loop left running

    assert runs == 3 and set(statuses) <= {"error", "timeout"}, statuses
    typing = tg.typing()
    assert sum(not h.body["on"] for h in typing) == runs  # each run ended its typing once
    assert sum(h.body["on"] for h in typing) >= runs
    assert typing[-1].body["on"] is False


async def test_runs_in_two_chats_of_one_group_type_into_each_chat_and_its_thread(tmp_path: Path) -> None:
    # a run takes rows of one chat (and topic): two chats routed to one group are two runs, one after the other in
    # the group's lane, each typing into its own chat and thread
    tg = TypingAdapter("tg")
    async with world(tmp_path / "data", tg, {"ECHO_DELAY": 1.2}) as w:
        token = await w.register(tg, {"send_text": True, "typing": True})
        await w.post(token, id="a-1", chat_jid="telegram:1", content="first", topic="5")
        await w.post(token, id="b-1", chat_jid="telegram:2", content="second")
        await w.h.wait_for(lambda: len(tg.sends()) == 2, "both replies at /send")
        await asyncio.sleep(3 * INTERVAL)

    for chat, thread in (("telegram:1", "5"), ("telegram:2", None)):
        typing = tg.typing(chat)
        [send] = tg.sends(chat)
        assert {h.body["thread_id"] for h in typing} == {thread}
        assert len([h for h in typing if h.body["on"]]) >= 2
        assert [h.body["on"] for h in typing][-1] is False
        assert not [h for h in typing if h.body["on"] and h.at > send.at]
    assert w.runs() == 2


# an agent that says what it is doing (a <status> line) before it answers: still working, typing goes on
STATUS_FIRST = """
import json, sys, time
json.load(sys.stdin)
def emit(result):
    print("---ARIZUKO_OUTPUT_START---", json.dumps({"status": "ok", "result": result}), "---ARIZUKO_OUTPUT_END---",
          sep="\\n", flush=True)
emit("<status>looking it up</status>")
time.sleep(1.6)
emit("found it")
time.sleep(2.0)
"""


async def test_a_status_line_is_not_the_first_reply_typing_goes_on_until_the_answer(tmp_path: Path) -> None:
    tg = TypingAdapter("tg")
    command = [sys.executable, "-I", "-c", STATUS_FIRST]
    async with world(tmp_path / "data", tg, {}, command=command) as w:
        token = await w.register(tg, {"send_text": True, "typing": True})
        await w.post(token, id="m-1", chat_jid="telegram:42", content="hello")
        await w.h.wait_for(lambda: len(tg.sends()) == 2, "the status line and the answer at /send")
        await asyncio.sleep(3 * INTERVAL)

    status, answer = tg.sends()
    assert (status.body["content"], answer.body["content"]) == ("⏳ looking it up", "found it")
    typing = tg.typing()
    on_after_status = [h for h in typing if h.body["on"] and status.at < h.at < answer.at]
    assert len(on_after_status) >= 2  # the status line did not end it
    assert [h.body["on"] for h in typing].count(False) == 1
    assert not [h for h in typing if h.body["on"] and h.at > answer.at]


async def test_the_web_chat_stream_says_working_from_run_start_to_the_reply_and_stores_nothing(
    tmp_path: Path,
) -> None:
    async with (
        web_chat(tmp_path, slow={"ECHO_DELAY": 1.5, "ECHO_HANG": 3.0}) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        async with open_stream(client, "slow", token=OTHER_TOKEN, topic="t-1") as stream:
            await post(client, "hello", "t-1", folder="slow", token=OTHER_TOKEN)
            await stream.until(lambda events: bool(stream.working), "the working event")
            [on] = stream.working
            assert on == {"after": 1, "topic": "t-1", "working": True}  # after the message itself
            # a stream opened while the run works hears it at once, after its replay
            async with open_stream(client, "slow", token=OTHER_TOKEN, topic="t-1") as late:
                await late.until(lambda events: bool(late.working), "the late working event")
                assert late.working == [{"after": 1, "topic": "t-1", "working": True}]
            events = await stream.until_content("echo: hello")
            await stream.until(lambda events: len(stream.working) == 2, "the working event's end")
            still_running = h.store.runs_in_flight()  # the first reply ended it, not the run's end
        assert len(still_running) == 1
        assert stream.working == [on, {"after": 1, "topic": "t-1", "working": False}]
        assert [e["content"] for e in events] == ["hello", "echo: hello"]
        assert [row.content for row in topic_rows(h.store, "t-1", chat="web:slow")] == ["hello", "echo: hello"]
