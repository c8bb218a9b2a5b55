"""Files an agent writes in its folder reach a channel adapter: in ``/send``, inline and by a signed link (issue 14, 4).

The echo agent (``ECHO_ATTACH=1``) answers ``attach chart.png`` by writing ``out/chart.png`` in its folder and listing
it in its output block, as a real agent would; it runs as a local process and in a real Docker container. kanmon
copies the file into its media store and records it on the reply row; a fake adapter (a real HTTP server, like
tests/e2e/test_adapter_delivery.py's) gets it in ``/send`` and downloads it from gated's HTTP surface by the link. A
link that is expired or altered is refused; a path that leaves the folder is never copied; a block replayed after a
restart stores neither the file nor the row twice.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from kanmon.store import Group
from kanmon.web import WebConfig, create_app
from tests.e2e.test_adapter_delivery import FAST, SECRET, FakeAdapter, World
from tests.gateway_harness import docker_group, process_group, running_gateway
from tests.http_serving import serving

RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]
GroupFactory = Callable[[str, dict[str, Any]], Group]


@pytest.fixture
def instance() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=RUNTIMES)
def agent(request: pytest.FixtureRequest, instance: str) -> Iterator[tuple[GroupFactory, dict[str, Any]]]:
    """The group factory and gateway options of the runtime under test; Docker leftovers removed afterwards."""
    if request.param == "process":
        yield process_group, {}
        return
    client = request.getfixturevalue("docker_client")
    image = request.getfixturevalue("echo_image")
    yield (lambda folder, env: docker_group(folder, image, env)), {"docker_client": client}
    for container in client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
        container.remove(force=True)


@contextlib.asynccontextmanager
async def attaching_world(
    data: Path, adapter: FakeAdapter, agent: tuple[GroupFactory, dict[str, Any]], instance: str, **env: Any
) -> AsyncIterator[World]:
    """Gateway (group ``corp`` for telegram:, echo agent with ECHO_ATTACH), its HTTP API and the adapter, served."""
    factory, options = agent
    async with contextlib.AsyncExitStack() as stack:
        if not adapter.url:
            adapter.url = await stack.enter_async_context(serving(adapter.app()))
        group = factory("corp", {"ECHO_ATTACH": 1, **env})
        h = await stack.enter_async_context(
            running_gateway(data, [group], poll_interval=0.2, instance=instance, drain_timeout=0.1, **options)
        )
        if not h.store.list_routes():
            h.store.add_route(seq=0, match="platform=telegram", target="corp")
        h.gateway.configure_adapters(FAST)
        url = await stack.enter_async_context(serving(create_app(h.gateway, WebConfig(channel_secret=SECRET))))
        h.gateway.media_links.base_url = url  # what gated run sets to its own address
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        yield World(h, api)


def media_files(data: Path) -> list[Path]:
    """The files of the media store (not its signing key, not its spool)."""
    root = data / "media"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp" and p.name != "url.key")


def with_query(url: str, **changes: str) -> str:
    split = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(split.query).items()} | changes
    return split._replace(query=urlencode(query)).geturl()


async def test_an_agents_file_reaches_the_adapter_inline_and_by_a_signed_link(
    tmp_path: Path, agent: tuple[GroupFactory, dict[str, Any]], instance: str
) -> None:
    tg = FakeAdapter("tg")
    data = tmp_path / "data"
    async with attaching_world(data, tg, agent, instance) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:42", content="attach chart.png")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:42")] == ["sent"], "delivery")

        written = (data / "groups" / "corp" / "out" / "chart.png").read_bytes()
        assert written.startswith(b"\x89PNG")
        sha = hashlib.sha256(written).hexdigest()
        [row] = w.reply_rows("telegram:42")
        assert row.content == "echo: attach chart.png"
        assert row.attachments == [{"sha256": sha, "name": "chart.png", "mime": "image/png", "size": len(written)}]
        assert media_files(data) == [data / "media" / sha[:2] / sha[2:]]

        [body] = list(tg.shown.values())
        [sent] = body["attachments"]
        assert {key: sent[key] for key in ("filename", "name", "mime", "mime_type", "size", "sha256")} == {
            "filename": "chart.png", "name": "chart.png", "mime": "image/png", "mime_type": "image/png",
            "size": len(written), "sha256": sha,
        }  # fmt: skip
        assert base64.b64decode(sent["data"]) == written
        assert sent["url"].startswith(f"{str(w.api.base_url).rstrip('/')}/media/{sha}?")

        async with httpx.AsyncClient(timeout=30) as outsider:  # the adapter's own client: no credentials
            fetched = await outsider.get(sent["url"])
            assert fetched.status_code == 200, fetched.text
            assert fetched.content == written
            assert fetched.headers["content-type"] == "image/png"
            assert fetched.headers["x-content-type-options"] == "nosniff"
            assert fetched.headers["content-disposition"] == "attachment"

            signature = parse_qs(urlsplit(sent["url"]).query)["sig"][0]
            tampered = [
                with_query(sent["url"], sig=signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")),
                with_query(sent["url"], exp=str(int(parse_qs(urlsplit(sent["url"]).query)["exp"][0]) + 3600)),
                sent["url"].replace(sha, hashlib.sha256(b"another file").hexdigest()),
                sent["url"].split("?")[0],
            ]
            for url in tampered:
                refused = await outsider.get(url)
                assert refused.status_code == 403, (url, refused.text)
                assert refused.json() == {"detail": "invalid or expired link"}

            w.h.gateway.media_links.ttl = -1.0  # a link made now expired a second ago
            expired = await outsider.get(w.h.gateway.media_links.url(sha))
            assert expired.status_code == 403


async def test_a_file_over_the_inline_threshold_goes_by_link_only(
    tmp_path: Path, agent: tuple[GroupFactory, dict[str, Any]], instance: str
) -> None:
    tg = FakeAdapter("tg")
    async with attaching_world(tmp_path / "data", tg, agent, instance) as w:
        w.h.gateway.config = type(w.h.gateway.config)(
            **{**vars(w.h.gateway.config), "media": type(w.h.gateway.config.media)(inline_bytes=10)}
        )
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:7", content="attach notes.txt")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:7")] == ["sent"], "delivery")
        [body] = list(tg.shown.values())
        [sent] = body["attachments"]
        assert "data" not in sent
        assert sent["mime_type"] == "text/plain" and sent["name"] == "notes.txt"
        async with httpx.AsyncClient(timeout=30) as outsider:
            fetched = await outsider.get(sent["url"])
        assert fetched.content == b"notes.txt, written by the echo agent\n"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        pytest.param("../../kanmon.db", "'..' may not appear", id="dotdot"),
        pytest.param("/proc/self/environ", "must be relative", id="proc"),
        pytest.param("out/missing.png", "no such file", id="missing"),
    ],
)
async def test_a_file_the_agent_may_not_send_is_named_in_the_reply_and_never_copied(
    tmp_path: Path, agent: tuple[GroupFactory, dict[str, Any]], instance: str, path: str, why: str
) -> None:
    tg = FakeAdapter("tg")
    data = tmp_path / "data"
    async with attaching_world(data, tg, agent, instance) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:9", content=f"list {path}")
        await w.h.wait_for(lambda: [r.delivery_status for r in w.reply_rows("telegram:9")] == ["sent"], "delivery")
        [row] = w.reply_rows("telegram:9")
        assert row.attachments is None
        assert row.content.startswith(f"echo: list {path}\n\n⚠ not sent: attachment {path!r}: ")
        assert why in row.content
        [body] = list(tg.shown.values())
        assert "attachments" not in body
        assert media_files(data) == []
        await w.h.wait_for(lambda: all(run.ended_at for run in w.h.store.recent_runs()), "the run's end")
        [run] = w.h.store.recent_runs()
        assert run.error is not None and why in run.error


async def test_a_block_replayed_after_a_restart_stores_one_file_and_one_row(
    tmp_path: Path, agent: tuple[GroupFactory, dict[str, Any]], instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kanmon.gateway.runner")
    tg = FakeAdapter("tg")
    data = tmp_path / "data"
    # two outputs 1.5 s apart: gated goes away after the first (with its file) was stored, and the next gated
    # re-attaches the run and replays its output from the start, the file's block included
    async with attaching_world(data, tg, agent, instance, ECHO_DELAY=1.5) as w:
        await w.register(tg, ["telegram:"])
        await w.post("tg", id="m-1", chat_jid="telegram:5", content="attach a.png")
        await w.post("tg", id="m-2", chat_jid="telegram:5", content="two")
        await w.h.wait_for(lambda: len(w.reply_rows("telegram:5")) >= 1, "the first reply")
    stored_first = media_files(data)
    tg.url = ""  # served again, on a new port, by the next world
    async with attaching_world(data, tg, agent, instance) as again:
        await again.register(tg, ["telegram:"])
        await again.h.settled()
        await again.h.wait_for(lambda: len(again.reply_rows("telegram:5")) == 2, "both replies")
        rows = again.reply_rows("telegram:5")
        assert [row.content for row in rows] == ["echo: attach a.png", "echo: two"]
        assert [len(row.attachments or []) for row in rows] == [1, 0]
        assert len({row.id for row in rows}) == 2
    assert "re-attached; replaying its output" in caplog.text  # the file's block was handled a second time
    assert media_files(data) == stored_first and len(stored_first) == 1
    assert not [p for p in (data / "media" / "tmp").iterdir()]  # no half-copied file left behind
