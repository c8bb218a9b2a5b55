"""Files over gated's ``media.inline_bytes`` reach Telegram as uploads: the adapter fetches them from the link gated
gives and uploads the bytes, because Telegram's servers cannot reach gated (it sits on a private network).

Telegram itself is out of reach from the tests, so the fake Bot API (tests/telegram_fake.py) stands in for it: it
parses the ``multipart/form-data`` upload as Telegram does and keeps each file's name, Content-Type and bytes, and
it refuses uploads over the Bot API's limits. The first tests run the whole way (an agent's file, gated's media
store and signed link); the rest call the adapter's ``/send`` as gated does, with links to a local file server
that fails on demand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kanmon.gateway.media import MediaConfig
from tests.e2e.telegram_world import TelegramWorld, telegram_world
from tests.http_serving import serving
from tests.telegram_fake import UPLOAD_LIMIT, FakeBotApi, Upload, message, running_fake, user

pytestmark = pytest.mark.slow
ANN = user(42, "Ann")
TABLE = b"".join(f"{n},{n * n}\n".encode() for n in range(40_000))  # a CSV of about 400 KB


def never_given_a_link(fake: FakeBotApi, link: str) -> None:
    """No Bot API call carried ``link`` (or any part of gated's media path)."""
    for call in fake.calls:
        given = json.dumps(call.params)
        assert link not in given and "/media/" not in given, (call.method, given)


async def agent_sends(w: TelegramWorld, fake: FakeBotApi, name: str, content: bytes) -> None:
    """The echo agent answers Ann with the file ``out/<name>`` of its folder, written here first."""
    out = w.h.data_dir / "groups" / "corp" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(content)
    fake.add_update(message=message(fake.chat(42), 1, ANN, f"list out/{name}"))


async def test_a_file_over_the_inline_limit_is_fetched_from_gated_and_uploaded(tmp_path: Path) -> None:
    assert len(TABLE) > MediaConfig().inline_bytes  # gated sends it by its link only
    with running_fake() as fake:
        async with telegram_world(tmp_path, fake, agent_env={"ECHO_ATTACH": 1}) as w:
            await agent_sends(w, fake, "squares.csv", TABLE)
            await w.h.wait_for(lambda: [r.delivery_status for r in w.h.outbound() if r.run_id] == ["sent"], "sent")
            [row] = [row for row in w.h.outbound() if row.run_id]
            assert row.attachments and row.attachments[0]["size"] == len(TABLE)
            assert [call.method for call in fake.calls if call.method.startswith("send")] == [
                "sendMessage", "sendDocument"]  # fmt: skip
            [document] = fake.calls_of("sendDocument")
            upload = document.uploads["document"]
            assert (upload.filename, upload.content_type) == ("squares.csv", "text/csv")
            assert upload.data == TABLE
            assert document.params["document"] == {"upload": "squares.csv"}
            never_given_a_link(fake, w.gated_url)


async def test_an_expired_link_fails_the_reply_with_a_reason_that_carries_no_signature(tmp_path: Path) -> None:
    with running_fake() as fake:
        async with telegram_world(tmp_path, fake, agent_env={"ECHO_ATTACH": 1}) as w:
            w.h.gateway.media_links.ttl = -1.0  # every link gated makes expired a second ago: gated answers 403
            await agent_sends(w, fake, "squares.csv", TABLE)
            await w.h.wait_for(lambda: [r.delivery_status for r in w.h.outbound() if r.run_id] == ["failed"], "failed")
            [row] = [row for row in w.h.outbound() if row.run_id]
            assert row.delivery_error is not None
            assert "'squares.csv'" in row.delivery_error and "403" in row.delivery_error
            assert "sig=" not in row.delivery_error and "exp=" not in row.delivery_error  # the link is a credential
            assert fake.calls_of("sendDocument") == []
            never_given_a_link(fake, w.gated_url)


class Files:
    """A file server standing in for gated's media links: ``/<name>`` answers ``status`` (200: ``content``)."""

    def __init__(self) -> None:
        self.status = 200
        self.content = TABLE
        self.declared: int | None = None  # a Content-Length to announce instead of the real one
        self.requests: list[str] = []

    async def file(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        if self.status != 200:
            return Response(f"answered {self.status}", status_code=self.status)
        if self.declared is not None:
            return Response(self.content, headers={"Content-Length": str(self.declared)}, media_type="text/csv")
        return StreamingResponse(self.chunks(), media_type="text/csv")  # no Content-Length: only the bytes tell

    async def chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.content), 1 << 20):
            yield self.content[start : start + (1 << 20)]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{name}", self.file)])


def attachment(url: str, **extra: Any) -> dict[str, Any]:
    """An attachment as gated describes a file over ``media.inline_bytes``: a link, no ``data``."""
    return {"url": f"{url}/squares.csv?exp=1&sig=SECRETSIG", "filename": "squares.csv", "name": "squares.csv",
            "mime": "text/csv", "mime_type": "text/csv", **extra}  # fmt: skip


async def test_a_link_that_fails_now_is_retried_and_the_retry_posts_only_the_file(tmp_path: Path) -> None:
    files = Files()
    with running_fake() as fake:
        fake.chat(42)
        async with serving(files.app()) as url, telegram_world(tmp_path, fake, routes=False) as w:
            body = {"chat_jid": "telegram:42", "content": "the table:", "attachments": [attachment(url)]}
            files.status = 503
            later = await w.send(body, key="k-1")
            assert later.status_code == 502, later.text  # gated retries it
            assert "squares.csv" in later.json()["error"] and "SECRETSIG" not in later.text
            files.status = 200
            answer = await w.send(body, key="k-1")
            assert answer.status_code == 200, answer.text
            assert [call.method for call in fake.calls if call.method.startswith("send")] == [
                "sendMessage", "sendDocument"]  # fmt: skip
            upload = fake.calls_of("sendDocument")[0].uploads["document"]
            assert (upload.filename, upload.content_type, upload.data) == ("squares.csv", "text/csv", TABLE)


@pytest.mark.parametrize(("status", "answer"), [(404, 422), (410, 422), (403, 422), (500, 502), (429, 502)])
async def test_a_link_gated_answers_with_an_error_is_refused_or_retried_as_its_status_says(
    tmp_path: Path, status: int, answer: int
) -> None:
    files = Files()
    files.status = status
    with running_fake() as fake:
        fake.chat(42)
        async with serving(files.app()) as url, telegram_world(tmp_path, fake, routes=False) as w:
            sent = await w.send({"chat_jid": "telegram:42", "content": "", "attachments": [attachment(url)]})
            assert sent.status_code == answer, sent.text
            assert f"answered {status}" in sent.json()["error"] and "SECRETSIG" not in sent.text
            assert fake.calls_of("sendDocument") == []


@pytest.mark.parametrize("declared", [None, UPLOAD_LIMIT + 1])
async def test_a_file_over_telegrams_upload_limit_is_refused_with_one_reason(
    tmp_path: Path, declared: int | None
) -> None:
    files = Files()
    files.content = b"x" * (UPLOAD_LIMIT + 1)
    files.declared = declared  # announced, or only counted while it streams
    with running_fake() as fake:
        fake.chat(42)
        async with serving(files.app()) as url, telegram_world(tmp_path, fake, routes=False) as w:
            sent = await w.send({"chat_jid": "telegram:42", "content": "", "attachments": [attachment(url)]})
            assert sent.status_code == 422, sent.text
            assert sent.json()["error"] == (
                "attachment 'squares.csv': larger than Telegram's upload limit for bots (50000000 bytes)"
            )
            said = await w.send(
                {"chat_jid": "telegram:42", "content": "", "attachments": [attachment(url, size=UPLOAD_LIMIT + 1)]}
            )
            assert said.status_code == 422 and said.json() == sent.json()
            assert len(files.requests) == 1  # a size gated gives is believed: nothing fetched for the second
            assert fake.calls_of("sendDocument") == []


async def test_a_photo_over_telegrams_photo_limit_goes_as_a_document(tmp_path: Path) -> None:
    files = Files()
    files.content = b"\x89PNG\r\n\x1a\n" + b"\0" * 11_000_000  # over 10 MB: Telegram takes no such photo
    with running_fake() as fake:
        fake.chat(42)
        async with serving(files.app()) as url, telegram_world(tmp_path, fake, routes=False) as w:
            big = {"url": f"{url}/big.png", "filename": "big.png", "mime_type": "image/png"}
            sent = await w.send({"chat_jid": "telegram:42", "content": "", "attachments": [big]})
            assert sent.status_code == 200, sent.text
            assert fake.calls_of("sendPhoto") == []
            upload = fake.calls_of("sendDocument")[0].uploads["document"]
            assert (upload.filename, upload.content_type, upload.data) == ("big.png", "image/png", files.content)


async def test_attachments_go_out_as_files_after_the_text(tmp_path: Path) -> None:
    files = Files()
    with running_fake() as fake:
        fake.chat(42)
        async with serving(files.app()) as url, telegram_world(tmp_path, fake, routes=False) as w:
            attachments = [
                {"type": "photo", "file_id": "AgAD-photo"},
                {"url": f"{url}/report.pdf", "filename": "report.pdf", "mime_type": "application/pdf"},
                {"data": "aGVsbG8=", "filename": "hello.txt", "mime_type": "text/plain"},
            ]
            answer = await w.send({"chat_jid": "telegram:42", "content": "files:", "attachments": attachments})
            assert answer.status_code == 200, answer.text
            assert [call.method for call in fake.calls if call.method.startswith("send")] == [
                "sendMessage", "sendPhoto", "sendDocument", "sendDocument"]  # fmt: skip
            photo, fetched, inline = (call for call in fake.calls if call.method in {"sendPhoto", "sendDocument"})
            assert photo.params["photo"] == "AgAD-photo" and photo.uploads == {}
            assert fetched.uploads["document"] == Upload("report.pdf", "application/pdf", TABLE)
            assert inline.uploads["document"] == Upload("hello.txt", "text/plain", b"hello")
            files_only = await w.send({"chat_jid": "telegram:42", "content": "", "attachments": attachments[:1]})
            assert files_only.status_code == 200


async def test_a_file_gated_sends_inline_goes_up_as_its_bytes_without_fetching_its_link(tmp_path: Path) -> None:
    files = Files()
    files.content = b"\x89PNG\r\n\x1a\n" + b"big" * 1000
    with running_fake() as fake:
        fake.chat(42)
        async with serving(files.app()) as url, telegram_world(tmp_path, fake, routes=False) as w:
            chart = {
                "url": "http://127.0.0.1:9/media/ab?exp=1&sig=x", "data": "iVBORw0KGgo=", "filename": "chart.png",
                "name": "chart.png", "mime": "image/png", "mime_type": "image/png", "size": 8,
            }  # fmt: skip
            linked = {**chart, "data": None, "url": f"{url}/big.png", "filename": "big.png", "size": 3008}
            answer = await w.send({"chat_jid": "telegram:42", "content": "", "attachments": [chart, linked]})
            assert answer.status_code == 200, answer.text  # the first link (nothing listens there) was never fetched
            assert [call.uploads["photo"] for call in fake.calls_of("sendPhoto")] == [
                Upload("chart.png", "image/png", bytes.fromhex("89504e470d0a1a0a")),
                Upload("big.png", "image/png", files.content),
            ]
            assert files.requests == ["/big.png"]
