"""Attachments in, end to end: a message's files are fetched into the group's inbox at run start, and the agent reads
each at the path its prompt gives: a local process (the host path) and a Docker container (``/home/agent/inbox``).

The agent is the echo agent with ``ECHO_FILES=1``: it answers each ``<attachment/>`` with the sha256 of the file it
opened at that path, or with the note kanmon wrote instead. Files come as base64 ``data`` and as ``url`` from a real
HTTP server on 127.0.0.1 (allowed here through ``allow_private``); a 404 and a server that does not answer in time
leave notes, and the chat goes on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kanmon.gateway.adapters import AdapterDeliveryConfig
from kanmon.gateway.fetch import FetchPolicy
from kanmon.store import Channel, Group
from tests.gateway_harness import RECORD, Harness, docker_group, inputs, process_group, running_gateway
from tests.http_serving import serving

PICTURE = bytes(range(256)) * 40  # 10 KiB that are not text
REPORT = b"quarterly numbers\n"
NOTE = b"a note\n"
POLICY = FetchPolicy(allow_private=("127.0.0.0/8",), timeout=1.0, attempts=2, retry_wait=0.05)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_app() -> Starlette:
    async def report(request: Request) -> Response:
        return Response(REPORT, media_type="text/plain")

    async def missing(request: Request) -> Response:
        return Response("gone", status_code=404)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(3)
        return Response(b"too late")

    return Starlette(routes=[Route("/report.txt", report), Route("/missing", missing), Route("/slow", slow)])


def attachments(url: str) -> list[dict[str, Any]]:
    return [
        {"name": "picture.png", "mime": "image/png", "size": len(PICTURE), "data": base64.b64encode(PICTURE).decode()},
        {"name": "report.txt", "mime": "text/plain", "url": f"{url}/report.txt"},
        {"name": "../../../escape.txt", "mime": "text/plain", "data": base64.b64encode(NOTE).decode()},
        {"name": "gone.pdf", "mime": "application/pdf", "url": f"{url}/missing"},
        {"name": "slow.bin", "url": f"{url}/slow"},
    ]


async def exchange(h: Harness, url: str) -> tuple[int, list[str]]:
    sent = await h.send("web:corp", "look at these", attachments=attachments(url))
    await h.wait_for(lambda: len(h.replies("web:corp")) >= 6, "the echo and five file reports")
    return sent.seq, h.replies("web:corp")


def expected(seq: int) -> list[str]:
    return [
        "echo: look at these",
        f"file picture.png: sha256 {sha(PICTURE)}",
        f"file report.txt: sha256 {sha(REPORT)}",
        f"file ../../../escape.txt: sha256 {sha(NOTE)}",
        "file gone.pdf: not received: the server answered HTTP 404",
        "file slow.bin: not received: no complete answer within 1s",
    ]


def check_inbox(h: Harness, seq: int) -> None:
    inbox = h.data_dir / "groups" / "corp" / "inbox"
    assert sorted(path.name for path in inbox.iterdir()) == sorted(
        [f"{seq}-picture.png", f"{seq}-report.txt", f"{seq}-escape.txt"]
    )
    assert (inbox / f"{seq}-picture.png").read_bytes() == PICTURE
    assert not (h.data_dir / "escape.txt").exists() and not (h.data_dir.parent / "escape.txt").exists()


def prompt_paths(h: Harness) -> list[str]:
    import re

    prompt = inputs(h, "corp")[-1]["prompt"]
    return re.findall(r'path="([^"]*)"', prompt)


async def test_a_process_agent_reads_each_attachment_at_the_path_its_prompt_gives(tmp_path: Path) -> None:
    group = process_group("corp", {"ECHO_FILES": 1, "ECHO_RECORD": RECORD})
    async with serving(files_app()) as url, running_gateway(tmp_path / "data", [group], attachments=POLICY) as h:
        seq, replies = await exchange(h, url)
        assert replies == expected(seq)
        home = (h.data_dir / "groups" / "corp").absolute()
        assert prompt_paths(h) == [f"{home}/inbox/{seq}-{name}" for name in ("picture.png", "report.txt", "escape.txt")]
        check_inbox(h, seq)
        # the next message with the same file names gets its own files; the first ones stay
        again = await h.send("web:corp", "and again", attachments=attachments(url)[:1])
        await h.wait_for(lambda: len(h.replies("web:corp")) >= 8, "the second exchange")
        assert h.replies("web:corp")[6:] == ["echo: and again", f"file picture.png: sha256 {sha(PICTURE)}"]
        assert (h.data_dir / "groups" / "corp" / "inbox" / f"{again.seq}-picture.png").read_bytes() == PICTURE


async def test_a_retried_batch_finds_its_files_without_fetching_them_again(tmp_path: Path) -> None:
    hits: list[str] = []

    async def counted(request: Request) -> Response:
        hits.append(request.url.path)
        return Response(REPORT)

    app = Starlette(routes=[Route("/report.txt", counted)])
    group = process_group("corp", {"ECHO_FILES": 1, "ECHO_FAIL_RUNS": 1})
    async with serving(app) as url, running_gateway(tmp_path / "data", [group], attachments=POLICY) as h:
        sent = await h.send("web:corp", "once", attachments=[{"name": "r.txt", "url": f"{url}/report.txt"}])
        await h.wait_for(lambda: len(h.replies("web:corp")) >= 2, "the answer after one failed run")
        assert h.replies("web:corp") == ["echo: once", f"file r.txt: sha256 {sha(REPORT)}"]
        assert (h.data_dir / "groups" / "corp" / "inbox" / f"{sent.seq}-r.txt").read_bytes() == REPORT
    assert hits == ["/report.txt"]


async def test_a_registered_adapter_on_loopback_is_fetched_from_with_the_channel_secret(tmp_path: Path) -> None:
    secret = "channel-secret-of-this-test"
    asked: list[str | None] = []

    async def adapter_file(request: Request) -> Response:
        asked.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != f"Bearer {secret}":
            return Response("who are you?", status_code=401)
        return Response(PICTURE, media_type="image/png")

    app = Starlette(routes=[Route("/files/{file_id}", adapter_file)])
    group = process_group("corp", {"ECHO_FILES": 1})
    async with serving(app) as url, running_gateway(tmp_path / "data", [group]) as h:  # default policy: no private
        h.gateway.configure_adapters(AdapterDeliveryConfig(channel_secret=secret))
        channel = Channel(
            name="tg", url=url, token_hash="0" * 64, jid_prefixes=["telegram:"], capabilities={},
            registered_at=h.gateway.clock.now(),
        )  # fmt: skip
        h.store.save_channel(channel)
        await h.wait_for(lambda: bool(h.gateway.registry.channels), "the gateway to see the adapter")
        photo = {"type": "photo", "file_id": "AgAD", "mime": "image/png", "url": f"{url}/files/AgAD"}
        await h.send("web:corp", "[Photo]", attachments=[photo])
        stranger = {"name": "x.png", "url": url.replace("127.0.0.1", "localhost") + "/files/AgAD"}
        await h.send("web:corp", "from elsewhere", attachments=[stranger])
        await h.wait_for(lambda: len(h.replies("web:corp")) >= 4, "both answers")
        replies = h.replies("web:corp")
    assert replies[:2] == ["echo: [Photo]", f"file photo.png: sha256 {sha(PICTURE)}"]
    assert replies[2] == "echo: from elsewhere"  # same port, another origin: a loopback address, refused
    assert replies[3].startswith("file x.png: not received: localhost is a private, loopback or link-local address")
    assert asked == [f"Bearer {secret}"]


@pytest.mark.docker
async def test_a_docker_agent_reads_each_attachment_under_home_agent_inbox(
    tmp_path: Path, docker_client: Any, echo_image: str
) -> None:
    group: Group = docker_group("corp", echo_image, {"ECHO_FILES": 1, "ECHO_RECORD": RECORD})
    async with (
        serving(files_app()) as url,
        running_gateway(
            tmp_path / "data", [group], docker_client=docker_client, instance="attin", attachments=POLICY
        ) as h,
    ):
        seq, replies = await exchange(h, url)
        assert replies == expected(seq)
        assert prompt_paths(h) == [
            f"/home/agent/inbox/{seq}-{name}" for name in ("picture.png", "report.txt", "escape.txt")
        ]
        check_inbox(h, seq)
