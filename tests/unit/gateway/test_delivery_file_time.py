"""A reply with files gets time for them: the adapter fetches each file from gated and uploads it to its platform.

``delivery.request_timeout`` (10 s by default) was the whole time one ``/send`` might take, files or not. A Telegram
adapter given a 40 MB chart by link needs longer than that to fetch it and upload it again: gated gave up, tried
again while the first upload was still going, and the reply took several rounds (the adapter's journal kept it from
being posted twice). A request now gets its timeout plus one second per MiB of the files it carries
(:data:`kanmon.gateway.adapters.FILE_BYTES_PER_SECOND`); a reply without files keeps the plain timeout.

The adapter here is a real HTTP server that takes its time; the timeouts are httpx's, on real time, kept short.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kanmon.gateway.adapters import (
    FILE_BYTES_PER_SECOND,
    MAX_FILE_ALLOWANCE,
    AdapterDeliveryConfig,
    HttpDeliverer,
    adapter_deliverer,
    file_allowance,
)
from kanmon.gateway.delivery import DeliveryError
from kanmon.store import Channel, Message, NewMessage, Store
from tests.http_serving import serving

START = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
TIMEOUT = 0.3  # seconds: delivery.request_timeout here
WORK = 0.9  # seconds the adapter takes to answer: longer than TIMEOUT, shorter than TIMEOUT + a MiB's allowance
CONFIG = AdapterDeliveryConfig(channel_secret="s", timeout=TIMEOUT, quick_tries=2, quick_wait=0.01)


@dataclass
class SlowAdapter:
    """Answers every ``/send`` after :data:`WORK` seconds, counting the requests it was sent."""

    requests: int = 0
    bodies: list[dict[str, object]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def send(request: Request) -> Response:
            self.bodies.append(await request.json())
            self.requests += 1
            await asyncio.sleep(WORK)
            return JSONResponse({"ok": True, "id": f"p-{self.requests}"})

        return Starlette(routes=[Route("/send", send, methods=["POST"])])


@pytest.fixture
async def deliverer() -> AsyncIterator[tuple[HttpDeliverer, SlowAdapter]]:
    adapter = SlowAdapter()
    async with serving(adapter.app()) as url, httpx.AsyncClient() as client:
        channel = Channel(
            name="tg", url=url, token_hash="h", jid_prefixes=["telegram:"], capabilities={}, registered_at=START
        )
        yield adapter_deliverer(channel, client, CONFIG, instance="k1"), adapter


def reply(store: Store, *sizes: int) -> Message:
    files = [{"sha256": f"{n:064x}", "name": f"f{n}.bin", "mime": "application/octet-stream", "size": size}
             for n, size in enumerate(sizes)]  # fmt: skip
    new = NewMessage(chat_jid="telegram:1", content="here", direction="out", attachments=files or None)
    return store.put_message(new).message


@pytest.mark.parametrize(
    ("files", "seconds"),
    [
        ([{"size": 3 * FILE_BYTES_PER_SECOND}, {"size": FILE_BYTES_PER_SECOND // 2}, {"url": "x"}], 3.5),
        ([{"size": 10**15}], MAX_FILE_ALLOWANCE),  # a record not from gated's media store may say anything
        ([{"size": size} for size in (None, -5, "big", True, 1e300, [1])], 0.0),
        ("not a list", 0.0),
        (["not a dict", 7], 0.0),
    ],
)
def test_the_allowance_is_a_second_per_mib_of_whole_sizes_up_to_ten_minutes(files: object, seconds: float) -> None:
    assert file_allowance({"attachments": files}) == seconds
    assert file_allowance({}) == 0.0


async def test_a_reply_with_files_gets_its_timeout_plus_time_for_their_bytes(
    store: Store, deliverer: tuple[HttpDeliverer, SlowAdapter]
) -> None:
    send, adapter = deliverer
    assert await send.send(reply(store, 700 << 10, 324 << 10)) == "p-1"  # 1 MiB in two files: 1.3 s in all
    assert adapter.requests == 1  # not timed out and sent again while the adapter was still uploading


async def test_a_reply_without_files_keeps_the_plain_timeout(
    store: Store, deliverer: tuple[HttpDeliverer, SlowAdapter]
) -> None:
    send, adapter = deliverer
    with pytest.raises(DeliveryError, match=f"did not answer within {TIMEOUT:g}s") as failed:
        await send.send(reply(store))
    assert failed.value.transient and adapter.requests == 2  # both quick tries timed out


async def test_each_try_builds_its_body_anew_so_its_links_are_fresh(
    store: Store, deliverer: tuple[HttpDeliverer, SlowAdapter]
) -> None:
    # a request may now wait minutes: a second try must not carry links signed before the first (media.url_ttl)
    send, adapter = deliverer
    built = list[str]()
    real = send._body

    async def body(message: Message, key: str) -> dict[str, object]:
        built.append(key)
        return await real(message, key)

    send._body = body
    with pytest.raises(DeliveryError):
        await send.send(reply(store))
    assert len(built) == adapter.requests == 2


async def test_a_daemon_gets_no_time_for_files_it_never_uploads(store: Store) -> None:
    # a daemon is sent the inbound message its route forwarded: the sizes of its files are the sender's to claim
    adapter = SlowAdapter()
    async with serving(adapter.app()) as url, httpx.AsyncClient() as client:
        daemon = HttpDeliverer(
            name="daemon:audit", prefixes=["daemon:audit"], url=f"{url}/send", body=_plain_body, client=client,
            config=CONFIG, instance="k1", label="daemon audit", exact=True,
        )  # fmt: skip
        with pytest.raises(DeliveryError, match=f"did not answer within {TIMEOUT:g}s"):
            await daemon.send(reply(store, 100 << 20))


async def _plain_body(message: Message, key: str) -> dict[str, object]:
    return {"idempotency_key": key, "content": message.content, "attachments": message.attachments}
