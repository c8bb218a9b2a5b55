"""Files uploaded in the web chat's API: stored as an inbound message with the file, received by the agent (the echo
agent answers with the sha256 of what it read in its inbox), listed in the topic's stream, and served back only
behind the chat's token, images inline and anything else as a download; a file over the cap stores nothing."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI

from kanmon.web import WebConfig, create_app
from kanmon.web.tokens import token_hash
from tests.e2e.test_web_chat import OTHER_TOKEN, TIMEOUT, TOKEN, bearer, open_stream, serve_http
from tests.gateway_harness import Harness, process_group, running_gateway

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5b2b1c50000000049454e44ae426082"
)


@contextlib.asynccontextmanager
async def files_chat(tmp_path: Path, config: WebConfig | None = None) -> AsyncIterator[tuple[Harness, FastAPI]]:
    """A gateway whose group ``corp`` (token TOKEN) answers files with their sha256; ``other`` has OTHER_TOKEN."""
    groups = [process_group("corp", {"ECHO_FILES": 1}), process_group("other")]
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.2) as h:
        h.store.set_group_web_token("corp", token_hash(TOKEN))
        h.store.set_group_web_token("other", token_hash(OTHER_TOKEN))
        yield h, create_app(h.gateway, config or WebConfig())


async def upload(
    client: httpx.AsyncClient,
    name: str,
    data: bytes,
    mime: str,
    *,
    content: str = "",
    topic: str = "t-1",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST one file to corp's web chat as the page does (multipart), with TOKEN unless ``headers`` say otherwise."""
    return await client.post(
        "/web/corp/uploads",
        headers=bearer() if headers is None else headers,
        files={"file": (name, data, mime)},
        data={"content": content, "topic": topic},
    )


async def test_an_uploaded_file_reaches_the_agent_the_stream_and_comes_back_only_with_the_token(tmp_path: Path) -> None:
    async with (
        files_chat(tmp_path) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client,
    ):
        async with open_stream(client, "corp", topic="t-1") as stream:
            answer = await upload(client, "dot.png", PNG, "image/png", content="what is this?")
            assert answer.status_code == 200, answer.text
            seq = answer.json()["seq"]
            assert answer.json()["size"] == len(PNG)
            events = await stream.until_content(f"file dot.png: sha256 {hashlib.sha256(PNG).hexdigest()}")
        mine = next(event for event in events if event["seq"] == seq)
        assert mine["content"] == "what is this?" and mine["role"] == "user"
        assert mine["attachments"] == [
            {
                "index": 0,
                "name": "dot.png",
                "mime": "image/png",
                "size": len(PNG),
                "url": f"/web/corp/files/{seq}/0",
                "inline": True,
            }
        ]
        assert [e["content"] for e in events if e["role"] == "assistant"][:1] == ["echo: what is this?"]
        assert (h.data_dir / "groups" / "corp" / "inbox" / f"{seq}-dot.png").read_bytes() == PNG

        served = await client.get(f"/web/corp/files/{seq}/0", headers=bearer())
        assert served.status_code == 200 and served.content == PNG
        assert served.headers["content-type"] == "image/png"
        assert served.headers["content-disposition"] == "inline; filename*=UTF-8''dot.png"
        assert served.headers["x-content-type-options"] == "nosniff"
        for headers in ({}, bearer(OTHER_TOKEN), bearer("wrong")):
            refused = await client.get(f"/web/corp/files/{seq}/0", headers=headers)
            assert refused.status_code == 401 and PNG not in refused.content
        assert (await client.get(f"/web/corp/files/{seq}/0", params={"token": TOKEN})).status_code == 401
        assert (await client.get(f"/web/other/files/{seq}/0", headers=bearer(OTHER_TOKEN))).status_code == 404
        for path in (f"/web/corp/files/{seq}/1", f"/web/corp/files/{seq + 999}/0"):
            assert (await client.get(path, headers=bearer())).status_code == 404
        # numbers no seq or index can be (once a 500 on SQLite: the driver could not bind them): a 422 saying so
        for path in (f"/web/corp/files/{10**20}/0", f"/web/corp/files/{2**63}/0", f"/web/corp/files/{seq}/{10**20}",
                     "/web/corp/files/0/0", "/web/corp/files/-1/0", f"/web/corp/files/{seq}/-1"):  # fmt: skip
            assert (await client.get(path, headers=bearer())).status_code == 422, path


async def test_a_file_that_is_not_a_safe_image_is_served_as_a_download(tmp_path: Path) -> None:
    page = b"<script>alert(1)</script>"
    async with files_chat(tmp_path) as (h, app), serve_http(app) as url, httpx.AsyncClient(base_url=url) as client:
        for name, mime in (("x.html", "text/html"), ("x.svg", "image/svg+xml"), ("résumé .pdf", "application/pdf")):
            answer = await upload(client, name, page, mime)
            assert answer.status_code == 200, answer.text
            served = await client.get(f"/web/corp/files/{answer.json()['seq']}/0", headers=bearer())
            assert served.content == page
            assert served.headers["content-type"] == "application/octet-stream"
            assert served.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
            assert "sandbox" in served.headers["content-security-policy"]
        await h.settled()


async def test_bad_uploads_are_refused_and_store_nothing(tmp_path: Path) -> None:
    config = WebConfig(max_upload_bytes=1000)
    async with (
        files_chat(tmp_path, config) as (h, app),
        serve_http(app) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        too_big = await upload(client, "big.bin", b"x" * 1001, "a/b")
        assert too_big.status_code == 413 and "larger than 1000 bytes" in too_big.json()["detail"]
        huge = await upload(client, "h.bin", b"x" * (3 << 20), "a/b")
        assert huge.status_code == 413
        no_token = await upload(client, "a.png", PNG, "image/png", headers={})
        assert no_token.status_code == 401
        bad_topic = await upload(client, "a.png", PNG, "image/png", topic="../x")
        assert bad_topic.status_code == 422
        no_file = await client.post("/web/corp/uploads", headers=bearer(), data={"content": "hi"})
        assert no_file.status_code == 422
        # the ordinary message endpoint keeps its own limit
        assert (await client.post("/web/corp/messages", headers=bearer(), content=b"x" * (2 << 20))).status_code == 413
        assert h.inbound("web:corp") == []
