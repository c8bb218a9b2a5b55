"""Fetching attachment URLs against a real HTTP server on 127.0.0.1: the address rule (no loopback, private or
link-local address unless it is a registered adapter's origin or configured), the channel secret only for adapters,
the size cap, the timeout, retries of transient failures only, and no redirects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kanmon.gateway.fetch import Fetcher, FetchFailed, FetchPolicy, origin_of
from tests.http_serving import serving

SECRET = "channel-secret-for-fetch-tests"


class Server:
    """What the test server was asked, and how often."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, str | None]] = []
        self.flaky_left = 2

    def app(self) -> Starlette:
        async def file(request: Request) -> Response:
            self._seen(request)
            return Response(b"\x89PNG bytes", media_type="image/png")

        async def flaky(request: Request) -> Response:
            self._seen(request)
            if self.flaky_left:
                self.flaky_left -= 1
                return Response("busy", status_code=503)
            return Response(b"finally")

        async def missing(request: Request) -> Response:
            self._seen(request)
            return Response("no", status_code=404)

        async def big(request: Request) -> Response:
            self._seen(request)
            return Response(b"x" * 2000)

        async def endless(request: Request) -> StreamingResponse:
            self._seen(request)

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(100):
                    yield b"y" * 500

            return StreamingResponse(chunks())

        async def slow(request: Request) -> Response:
            self._seen(request)
            await asyncio.sleep(1.5)
            return Response(b"late")

        async def moved(request: Request) -> Response:
            self._seen(request)
            return Response(status_code=302, headers={"Location": "/file"})

        paths = {"/file": file, "/flaky": flaky, "/missing": missing, "/big": big, "/endless": endless}
        paths |= {"/slow": slow, "/moved": moved}
        return Starlette(routes=[Route(path, handler) for path, handler in paths.items()])

    def _seen(self, request: Request) -> None:
        self.requests.append((request.url.path, request.headers.get("authorization"), request.headers.get("host")))


def fetcher(policy: FetchPolicy | None = None, trusted: tuple[str, ...] = ()) -> Fetcher:
    return Fetcher(policy or FetchPolicy(retry_wait=0.01), trusted=lambda: trusted, secret=lambda: SECRET)


async def failure(fetch: Fetcher, url: str) -> str:
    with pytest.raises(FetchFailed) as caught:
        await fetch.fetch(url)
    await fetch.aclose()
    return str(caught.value)


async def test_loopback_and_private_addresses_are_refused_before_any_request() -> None:
    server = Server()
    async with serving(server.app()) as url:
        reason = await failure(fetcher(), f"{url}/file")
        assert "127.0.0.1" in reason and "private, loopback or link-local" in reason
        localhost = url.replace("127.0.0.1", "localhost")
        assert "private, loopback or link-local" in await failure(fetcher(), f"{localhost}/file")
    for address in ("169.254.169.254", "10.1.2.3", "192.168.0.1", "[::1]", "[fe80::1]", "0.0.0.0"):
        assert "private, loopback or link-local" in await failure(fetcher(), f"http://{address}/latest/meta-data")
    assert server.requests == []


async def test_a_registered_adapter_is_fetched_from_with_the_channel_secret() -> None:
    server = Server()
    async with serving(server.app()) as url:
        fetch = fetcher(trusted=(f"{url}/",))
        assert await fetch.fetch(f"{url}/file") == b"\x89PNG bytes"
        await fetch.aclose()
    host = url.removeprefix("http://")
    assert server.requests == [("/file", f"Bearer {SECRET}", host)]


async def test_a_configured_private_network_is_fetched_from_without_the_secret() -> None:
    server = Server()
    async with serving(server.app()) as url:
        fetch = fetcher(FetchPolicy(allow_private=("127.0.0.0/8",)))
        assert await fetch.fetch(f"{url}/file") == b"\x89PNG bytes"
        await fetch.aclose()
    assert server.requests == [("/file", None, url.removeprefix("http://"))]


async def test_transient_failures_are_retried_and_others_are_not() -> None:
    server = Server()
    async with serving(server.app()) as url:
        trusted = (url,)
        fetch = fetcher(FetchPolicy(attempts=3, retry_wait=0.01), trusted)
        assert await fetch.fetch(f"{url}/flaky") == b"finally"
        await fetch.aclose()
        assert await failure(fetcher(trusted=trusted), f"{url}/missing") == "the server answered HTTP 404"
        assert await failure(fetcher(trusted=trusted), f"{url}/moved") == "the server answered HTTP 302"
        server.flaky_left = 5
        stingy = fetcher(FetchPolicy(attempts=2, retry_wait=0.01), trusted)
        assert await failure(stingy, f"{url}/flaky") == "the server answered HTTP 503"
    paths = [path for path, _, _ in server.requests]
    assert paths == ["/flaky"] * 3 + ["/missing", "/moved"] + ["/flaky"] * 2


async def test_the_size_cap_holds_whether_or_not_the_length_is_declared() -> None:
    server = Server()
    async with serving(server.app()) as url:
        policy = FetchPolicy(max_bytes=1000, retry_wait=0.01)
        assert await failure(fetcher(policy, (url,)), f"{url}/big") == "larger than the limit of 1000 bytes"
        assert await failure(fetcher(policy, (url,)), f"{url}/endless") == "larger than the limit of 1000 bytes"
        exact = FetchPolicy(max_bytes=2000)
        fetch = fetcher(exact, (url,))
        assert len(await fetch.fetch(f"{url}/big")) == 2000
        await fetch.aclose()


async def test_a_slow_server_times_out_on_every_attempt() -> None:
    server = Server()
    async with serving(server.app()) as url:
        policy = FetchPolicy(timeout=0.3, attempts=2, retry_wait=0.01)
        assert await failure(fetcher(policy, (url,)), f"{url}/slow") == "no complete answer within 0.3s"
    assert [path for path, _, _ in server.requests] == ["/slow", "/slow"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a", "gopher://x/", "/relative", ""])
async def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    assert await failure(fetcher(), url) == "not an http:// or https:// URL"


def test_origins_fill_in_the_port() -> None:
    assert origin_of("http://Adapter:8081/files/1") == ("http", "adapter", 8081)
    assert origin_of("https://a.example/x") == ("https", "a.example", 443)
    assert origin_of("http://a.example") == ("http", "a.example", 80)
    assert origin_of("mxc://server/id") is None


def test_a_bad_private_network_is_refused() -> None:
    bad: Any = ("not-a-network",)
    with pytest.raises(ValueError):
        FetchPolicy(allow_private=bad)
