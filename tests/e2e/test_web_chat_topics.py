"""The web chat's topic names, several tokens per group, ``me``, sender names and "working" on every topic (issue 18).

Over the HTTP API with the echo agent in the loop; the page's side is tests/e2e/test_web_browser_chat.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from kanmon.web import webchat
from kanmon.web.deps import WebConfig
from kanmon.web.tokens import token_hash
from tests.e2e.test_web_chat import (
    OTHER_TOKEN,
    TOKEN,
    asgi_client,
    bearer,
    open_stream,
    post,
    serve_http,
    web_chat,
)


async def test_each_token_of_a_group_opens_its_chat_until_it_is_revoked(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:
        second = h.store.add_web_token("corp", token_hash("second-link"), label="phone")
        for token in (TOKEN, "second-link"):
            assert (await client.get("/web/corp/topics", headers=bearer(token))).status_code == 200
        assert h.store.revoke_web_token("corp", second.id)
        refused = await client.get("/web/corp/topics", headers=bearer("second-link"))
        assert refused.status_code == 401
        assert (await client.get("/web/corp/topics", headers=bearer(TOKEN))).status_code == 200  # not logged out
        stream = await client.get("/web/corp/stream", params={"token": "second-link"})
        assert stream.status_code == 401


async def test_a_topic_is_named_and_renamed_and_keeps_its_id(tmp_path: Path) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:

        async def name(topic: str, text: str, token: str = TOKEN) -> httpx.Response:
            return await client.put("/web/corp/topic-names", json={"topic": topic, "name": text}, headers=bearer(token))

        named = await name("t-new", "  Trip\tplans \n")
        assert named.status_code == 200 and named.json() == {"topic": "t-new", "name": "Trip plans"}
        listed = (await client.get("/web/corp/topics", headers=bearer())).json()["topics"]
        assert [(t["topic"], t["name"], t["messages"], t["last_seq"]) for t in listed] == [
            ("t-new", "Trip plans", 0, 0)
        ]

        await post(client, "hello", "t-new")
        await h.wait_for(lambda: len(h.replies("web:corp")) == 1, "the reply")
        assert (await name("t-new", "Holiday")).status_code == 200
        assert (await name("", "Main room")).status_code == 200  # the main topic can be named too
        listed = (await client.get("/web/corp/topics", headers=bearer())).json()["topics"]
        assert [(t["topic"], t["name"], t["messages"]) for t in listed] == [
            ("", "Main room", 0),
            ("t-new", "Holiday", 2),
        ]
        rows = h.store.chat_messages("web:corp", 0, limit=10)
        assert {row.topic for row in rows} == {"t-new"}  # the messages keep the id

        assert (await name("t-new", "")).status_code == 200  # forgotten: shown by its id again
        listed = (await client.get("/web/corp/topics", headers=bearer())).json()["topics"]
        assert ("t-new", "") in [(t["topic"], t["name"]) for t in listed]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"topic": "t-1", "name": "x" * 81}, 422),
        ({"topic": "bad topic", "name": "x"}, 422),
        ({"topic": "t-1"}, 422),
        ({"topic": "t-1", "name": "a\x00b"}, 422),
        ({"topic": "t-1", "name": "ok", "extra": 1}, 422),
    ],
)
async def test_a_bad_topic_name_is_refused_and_stores_nothing(
    tmp_path: Path, body: dict[str, object], status: int
) -> None:
    async with web_chat(tmp_path) as (h, app), asgi_client(app) as client:
        response = await client.put("/web/corp/topic-names", json=body, headers=bearer())
        assert response.status_code == status, response.text
        assert h.store.topic_names("web:corp") == {}


async def test_naming_needs_the_folder_s_token_and_names_stay_in_their_chat(tmp_path: Path) -> None:
    async with web_chat(tmp_path, other={}) as (h, app), asgi_client(app) as client:
        body = {"topic": "t-1", "name": "secret plans"}
        assert (await client.put("/web/corp/topic-names", json=body, headers=bearer(OTHER_TOKEN))).status_code == 401
        assert (await client.put("/web/other/topic-names", json=body, headers=bearer(OTHER_TOKEN))).status_code == 200
        assert h.store.topic_names("web:corp") == {}
        listed = (await client.get("/web/corp/topics", headers=bearer())).json()["topics"]
        assert listed == []


async def test_me_names_the_sender_the_page_s_messages_are_stored_with_and_events_carry_names(tmp_path: Path) -> None:
    config = WebConfig(trusted_sender_header="X-User-Sub")
    async with (
        web_chat(tmp_path, config) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        ana = {**bearer(), "X-User-Sub": "ana"}
        me = (await client.get("/web/corp/me", headers=ana)).json()
        assert me == {"sender": "web:ana", "name": "ana"}
        anonymous = (await client.get("/web/corp/me", headers=bearer())).json()
        assert anonymous["sender"].startswith("web:anon-") and anonymous["name"] == "Anonymous"
        await client.post("/web/corp/messages", json={"content": "hi from ana", "topic": "t-1"}, headers=ana)
        await h.wait_for(lambda: len(h.replies("web:corp")) == 1, "the reply")
        async with open_stream(client, "corp", topic="t-1") as stream:
            events = await stream.until(lambda events: len(events) == 2, "both rows")
        assert [(e["sender"], e["sender_name"]) for e in events] == [("web:ana", "ana"), (events[1]["sender"], "")]


async def test_a_stream_hears_working_on_every_topic_of_its_chat(tmp_path: Path) -> None:
    async with (
        web_chat(tmp_path, slow={"ECHO_DELAY": 1.5, "ECHO_HANG": 0.5}) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        async with open_stream(client, "slow", token=OTHER_TOKEN, topic="t-shown") as stream:
            await post(client, "elsewhere", "t-other", folder="slow", token=OTHER_TOKEN)
            await stream.until(lambda events: bool(stream.working), "the other topic's working event")
            assert stream.working == [{"after": 0, "topic": "t-other", "working": True}]
            # a stream opened meanwhile is told which topics are being worked on, after its (empty) replay
            async with open_stream(client, "slow", token=OTHER_TOKEN, topic="t-third") as late:
                await late.until(lambda events: bool(late.working), "the late working event")
                assert late.working == [{"after": 0, "topic": "t-other", "working": True}]
            await stream.until(lambda events: len(stream.working) == 2, "the end of the work")
            assert stream.working[1] == {"after": 0, "topic": "t-other", "working": False}
            assert stream.events == []  # the other topic's messages are not this one's
        await h.wait_for(lambda: not h.store.runs_in_flight(), "the run's end")


async def test_revoking_a_token_ends_the_streams_it_opened_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webchat, "KEEPALIVE_SECONDS", 0.05)
    async with (
        web_chat(tmp_path) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        second = h.store.add_web_token("corp", token_hash("second-link"))
        async with open_stream(client, "corp") as kept, open_stream(client, "corp", token="second-link") as revoked:
            await revoked.until(lambda _: "keep-alive" in revoked.comments, "a keep-alive")
            h.store.revoke_web_token("corp", second.id)
            with pytest.raises(AssertionError, match="the stream ended"):
                await revoked.until(lambda _: False, "the end of the stream")
            await post(client, "still here", "")
            events = await kept.until_content("still here")
        assert [e["content"] for e in events][:1] == ["still here"]


async def test_revoking_a_token_ends_its_stream_while_the_chat_is_busy_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token is asked about on a timer, not only at an idle keep-alive: before, on a chat where something
    happened more often than the keep-alive interval, a revoked (leaked) link kept reading (an outside review)."""
    monkeypatch.setattr(webchat, "KEEPALIVE_SECONDS", 0.5)
    async with (
        web_chat(tmp_path) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        second = h.store.add_web_token("corp", token_hash("leaked-link"))
        async with open_stream(client, "corp", token="leaked-link", topic="t-x") as revoked:
            h.store.revoke_web_token("corp", second.id)

            async def chatter() -> None:  # a message every 0.1 s for 5 s: never a quiet 0.5 s
                for n in range(50):
                    await post(client, f"secret {n}", "t-x")
                    await asyncio.sleep(0.1)

            busy = asyncio.create_task(chatter())
            try:
                with pytest.raises(AssertionError, match="the stream ended"):
                    await revoked.until(lambda _: False, "the end of the stream")
                assert not busy.done()  # it ended while the chat was still busy
            finally:
                busy.cancel()
                await asyncio.gather(busy, return_exceptions=True)


async def test_a_folder_named_with_the_words_of_the_file_routes_serves_its_whole_chat(tmp_path: Path) -> None:
    """A folder may contain ``media`` or ``files`` (``acme/media/press``): before, its stream, topics and me were
    taken by the media route, as folder ``acme``, and refused with 401 (an outside review)."""
    folders = ("acme/media/press", "acme/files/1")
    async with (
        web_chat(tmp_path, None, **{folder: {} for folder in folders}) as (_h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        for folder in folders:
            for path in ("topics", "me"):
                answer = await client.get(f"/web/{folder}/{path}", headers=bearer(OTHER_TOKEN))
                assert answer.status_code == 200, (folder, path, answer.text)
            async with open_stream(client, folder, token=OTHER_TOKEN) as stream:
                await post(client, "hello", "", folder=folder, token=OTHER_TOKEN)
                await stream.until_content("echo: hello")
