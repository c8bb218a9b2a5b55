"""Replies reach Matrix whole: long ones split where nothing breaks, files uploaded, and a retried send never
posts twice (arizuko's adapters refused long replies or cut code blocks in half, and had no idempotency)."""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kanmon.adapters.matrix.split import json_size
from tests.matrix_harness import CHANNEL_SECRET, Human, Stack, room_with_bot

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {CHANNEL_SECRET}"}
PNG = bytes.fromhex("89504e470d0a1a0a") + b"kanmon" * 10


@pytest.fixture
def file_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``/plot.png``: where an agent's file would be fetched from."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/plot.png" else 404)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            if self.path == "/plot.png":
                self.wfile.write(PNG)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def body(event: dict[str, Any]) -> str:
    return str(event["content"]["body"])


def sent(human: Human, room: str, bot: str) -> list[dict[str, Any]]:
    """What the bot posted in ``room`` other than the echo agent's answers: what the test's /send calls posted."""
    return [event for event in human.from_user(room, bot) if not body(event).startswith("echo: ")]


async def test_a_long_answer_is_split_between_paragraphs_and_code_blocks_stay_whole(stack: Stack, alice: Human) -> None:
    room = await room_with_bot(alice, stack)
    code = "```python\n" + "".join(f"value_{i} = {i} * {i}  # a line of code\n" for i in range(300)) + "```"
    prose = "\n\n".join(f"Paragraph {i}: " + "some words to read " * 40 for i in range(40))
    asked = await alice.send(room, f"{prose}\n\n{code}\n\nthe end")  # about 45 kB: over one 32 kB message
    bot = stack.bot.user_id
    await alice.wait(lambda: any("the end" in body(e) for e in alice.from_user(room, bot)), "the whole answer")
    pieces = alice.from_user(room, bot)
    assert len(pieces) >= 2
    assert all(json_size(body(piece)) <= 32000 for piece in pieces)
    assert all(body(piece).count("```") % 2 == 0 for piece in pieces)  # every code block closed where it opened
    coded = [piece["content"] for piece in pieces if "```python" in body(piece)]
    assert coded and all('<pre><code class="language-python">' in c["formatted_body"] for c in coded)
    assert "\n".join(body(p) for p in pieces).replace("\n", "") == f"echo: {prose}{code}the end".replace("\n", "")
    assert pieces[0]["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": asked}}


async def test_a_file_with_its_bytes_inline_is_uploaded_without_fetching_its_link(stack: Stack, alice: Human) -> None:
    room = await room_with_bot(alice, stack)
    chart = {  # as gated sends an agent's small file: its download link (unreachable here) and its bytes
        "url": "http://127.0.0.1:9/media/ab?exp=1&sig=x", "data": base64.b64encode(PNG).decode(),
        "filename": "chart.png", "name": "chart.png", "mime": "image/png", "mime_type": "image/png", "size": len(PNG),
    }  # fmt: skip
    send = {"chat_jid": f"matrix:{room}", "content": "", "attachments": [chart]}
    async with httpx.AsyncClient(base_url=stack.adapter_url, timeout=60) as http:
        answer = await http.post("/send", json=send, headers={**AUTH, "Idempotency-Key": "k-file-1"})
        assert answer.status_code == 200, answer.text
    bot = stack.bot.user_id
    await alice.wait(lambda: len(sent(alice, room, bot)) >= 1, "the file")
    [image] = sent(alice, room, bot)
    assert image["content"]["msgtype"] == "m.image" and image["content"]["body"] == "chart.png"
    assert image["content"]["info"] == {"mimetype": "image/png", "size": len(PNG)}
    assert image["content"]["url"].startswith("mxc://")


async def test_send_posts_once_per_key_into_its_thread_with_files(stack: Stack, alice: Human, file_server: str) -> None:
    room = await room_with_bot(alice, stack)
    root = await alice.send(room, "start a thread here")
    mxc = await alice.upload(PNG, "image/png", "before.png")
    send = {
        "chat_jid": f"matrix:{room}", "content": "here is the plot", "reply_to": root, "thread_id": root,
        "attachments": [{"url": f"{file_server}/plot.png", "filename": "plot.png"},
                        {"url": mxc, "filename": "notes.txt", "mime": "text/plain"}],
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.adapter_url, timeout=60) as http:
        first = await http.post("/send", json=send, headers={**AUTH, "Idempotency-Key": "k-1-42"})
        assert first.status_code == 200, first.text
        again = await asyncio.gather(
            *(http.post("/send", json=send, headers={**AUTH, "Idempotency-Key": "k-1-42"}) for _ in range(3))
        )
        assert {r.json()["id"] for r in again} == {first.json()["id"]}  # the same answer, nothing posted again

        bot = stack.bot.user_id
        await alice.wait(lambda: len(sent(alice, room, bot)) >= 3, "the text and both files")
        await asyncio.sleep(1)
        await alice.sync()
        text, image, file = sent(alice, room, bot)  # three events, not six or twelve
        assert text["event_id"] == first.json()["id"] and body(text) == "here is the plot"
        assert image["content"]["msgtype"] == "m.image" and image["content"]["info"]["mimetype"] == "image/png"
        assert image["content"]["url"].startswith("mxc://")  # fetched and uploaded to the content repository
        assert (file["content"]["msgtype"], file["content"]["url"]) == ("m.file", mxc)
        for event in (text, image, file):
            assert event["content"]["m.relates_to"]["rel_type"] == "m.thread"
            assert event["content"]["m.relates_to"]["event_id"] == root
        assert text["content"]["m.relates_to"]["m.in_reply_to"] == {"event_id": root}

        # a topic that is not a Matrix thread (a #name topic of kanmon's) goes to the main timeline
        plain = await http.post(
            "/send", json={**send, "attachments": None, "thread_id": "#support", "content": "main timeline"},
            headers={**AUTH, "Idempotency-Key": "k-1-43"},
        )  # fmt: skip
        assert plain.status_code == 200
        await alice.wait(lambda: any(body(e) == "main timeline" for e in alice.from_user(room, bot)), "the reply")
        [main] = [e for e in alice.from_user(room, bot) if body(e) == "main timeline"]
        assert main["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": root}}

        key = {"Idempotency-Key": "k-1-44"}
        refused = {
            "no secret": await http.post("/send", json=send, headers=key),
            "wrong secret": await http.post("/send", json=send, headers={"Authorization": "Bearer no", **key}),
            "no key": await http.post("/send", json={**send, "idempotency_key": None}, headers=AUTH),
            "not matrix": await http.post("/send", json={**send, "chat_jid": "telegram:1"}, headers={**AUTH, **key}),
            "not in room": await http.post(
                "/send", json={**send, "chat_jid": "matrix:!nowhere:localhost"}, headers={**AUTH, **key}
            ),
        }
        assert {name: r.status_code for name, r in refused.items()} == {
            "no secret": 401, "wrong secret": 401, "no key": 400, "not matrix": 400, "not in room": 422,
        }  # fmt: skip
