"""The credential proxy (issue 19) between a real HTTP client and a real local upstream server, both over TCP.

The upstream stands in for the real API (api.anthropic.com is unreachable here): it records what reached it and can
stream its answer one chunk at a time, each chunk released by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kanmon.gateway.run_tokens import TOKEN_PREFIX, Grant, RunTokens
from kanmon.gateway.upstreams import Upstream
from kanmon.web.credproxy import CredentialProxy, KeyScrubber, upstream_client
from tests.http_serving import serving

KEY = "sk-ant-api03-REAL-KEY-7f3a9c1e5b2d4f6a8c0e"


@dataclass
class FakeApi:
    """What reached the fake API, and the chunks its streaming endpoint is allowed to send."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    release: list[asyncio.Event] = field(default_factory=lambda: [asyncio.Event() for _ in range(3)])

    def app(self) -> Starlette:
        async def record(request: Request) -> Response:
            body = await request.body()
            self.seen.append(
                {"path": request.scope["raw_path"].decode(), "query": request.url.query, "body": body,
                 "headers": dict(request.headers), "host": request.headers.get("host")}
            )  # fmt: skip
            if request.url.path.endswith("/echo"):  # a careless API that quotes the key back, split in two chunks
                half = len(KEY) // 2

                async def quoting() -> AsyncIterator[bytes]:
                    yield f'{{"said": "{KEY[:half]}'.encode()
                    await asyncio.sleep(0.01)
                    yield f'{KEY[half:]}", "again": "{KEY}"}}'.encode()

                return StreamingResponse(quoting(), headers={"x-echo": f"key={KEY}"})
            if request.url.path.endswith("/stream"):

                async def events() -> AsyncIterator[bytes]:
                    for n, gate in enumerate(self.release):
                        await gate.wait()
                        yield f'event: delta\ndata: {{"n": {n}}}\n\n'.encode()

                return StreamingResponse(events(), media_type="text/event-stream")
            return JSONResponse({"ok": True, "usage": {"input_tokens": 3, "output_tokens": 5}})

        return Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])


LIVE: set[str] = set()


@pytest.fixture
async def world() -> AsyncIterator[tuple[str, FakeApi, RunTokens, CredentialProxy]]:
    upstream = FakeApi()
    LIVE.clear()
    LIVE.update({"run-1", "run-2"})
    tokens = RunTokens(b"k" * 32, is_live=LIVE.__contains__)
    async with serving(upstream.app()) as upstream_url, upstream_client() as client:
        upstream.url = upstream_url
        upstreams = {
            "anthropic": Upstream(name="anthropic", base_url=f"{upstream_url}/api", secret="ANTHROPIC_API_KEY"),
            "openai": Upstream(
                name="openai", base_url=f"{upstream_url}/v1", secret="OPENAI", header="authorization",
                template="Bearer {secret}",
            ),
        }  # fmt: skip
        secrets = {"ANTHROPIC_API_KEY": KEY, "OPENAI": "sk-openai-other"}

        async def secret(name: str) -> str:
            return secrets[name]

        proxy = CredentialProxy(upstreams, tokens, secret, client=client)
        async with serving(proxy.app()) as proxy_url:
            yield proxy_url, upstream, tokens, proxy


async def test_a_live_run_token_is_swapped_for_the_real_key_and_only_the_upstream_sees_it(world: Any) -> None:
    proxy_url, upstream, tokens, proxy = world
    token = tokens.issue("run-1", "corp", ["anthropic"])["anthropic"]
    assert token.startswith(TOKEN_PREFIX) and KEY not in token
    async with httpx.AsyncClient() as agent:
        answer = await agent.post(
            f"{proxy_url}/anthropic/v1/messages?beta=true",
            headers={"x-api-key": token, "anthropic-version": "2023-06-01", "cookie": "a=b"},
            json={"model": "claude", "messages": []},
        )
    assert answer.status_code == 200 and answer.json()["ok"] is True
    (seen,) = upstream.seen
    assert seen["path"] == "/api/v1/messages" and seen["query"] == "beta=true"
    assert seen["headers"]["x-api-key"] == KEY and token not in str(seen["headers"])
    assert seen["headers"]["anthropic-version"] == "2023-06-01" and "cookie" not in seen["headers"]
    assert seen["headers"]["accept-encoding"] == "identity"
    assert b'"model"' in seen["body"]
    assert proxy.usage["run-1"].requests == 1 and proxy.usage["run-1"].bytes_up == len(seen["body"])
    assert (proxy.usage["run-1"].tokens.input, proxy.usage["run-1"].tokens.output) == (3, 5)  # the answer's usage


async def test_a_bearer_upstream_gets_its_key_in_authorization(world: Any) -> None:
    proxy_url, upstream, tokens, _ = world
    token = tokens.issue("run-1", "corp", ["openai"])["openai"]
    async with httpx.AsyncClient() as agent:
        answer = await agent.get(f"{proxy_url}/openai/models", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert upstream.seen[0]["headers"]["authorization"] == "Bearer sk-openai-other"
    assert upstream.seen[0]["path"] == "/v1/models"


@pytest.mark.parametrize("case", ["none", "garbage", "revoked", "other upstream", "prefix only"])
async def test_a_request_without_a_live_token_for_that_upstream_gets_401_and_reaches_nothing(
    world: Any, case: str
) -> None:
    proxy_url, upstream, tokens, _ = world
    issued = tokens.issue("run-1", "corp", ["anthropic", "openai"])
    headers = {
        "none": {},
        "garbage": {"x-api-key": "sk-ant-guess"},
        "revoked": {"x-api-key": issued["anthropic"]},
        "other upstream": {"x-api-key": issued["openai"]},
        "prefix only": {"x-api-key": TOKEN_PREFIX},
    }[case]
    if case == "revoked":
        LIVE.discard("run-1")  # the run ended
    async with httpx.AsyncClient() as agent:
        answer = await agent.post(f"{proxy_url}/anthropic/v1/messages", headers=headers, json={})
    assert answer.status_code == 401
    assert upstream.seen == []


async def test_only_configured_upstreams_and_paths_inside_them_are_reachable(world: Any) -> None:
    proxy_url, upstream, tokens, _ = world
    token = tokens.issue("run-1", "corp", ["anthropic"])["anthropic"]
    async with httpx.AsyncClient() as agent:
        other_host = await agent.get(f"{proxy_url}/evil.example.com/steal", headers={"x-api-key": token})
        climbing = await agent.get(f"{proxy_url}/anthropic/v1/%2e%2e/%2e%2e/admin", headers={"x-api-key": token})
        # an upstream that takes backslashes for slashes climbs as well (once let through encoded: a review)
        backslashes = [
            await agent.get(f"{proxy_url}/anthropic/v1/a{slash}..{slash}..{slash}admin", headers={"x-api-key": token})
            for slash in ("%5C", "%5c")
        ]
        authority = await agent.get(f"{proxy_url}/anthropic//evil.example.com/x", headers={"x-api-key": token})
    assert other_host.status_code == 404 and climbing.status_code == 400
    assert [answer.status_code for answer in backslashes] == [400, 400]
    # a path that looks like an authority is still a path on the upstream's own host
    assert authority.status_code == 200
    assert [seen["path"] for seen in upstream.seen] == ["/api//evil.example.com/x"]
    assert upstream.seen[0]["host"] == httpx.URL(upstream.url).netloc.decode()


async def test_server_sent_events_stream_through_chunk_by_chunk(world: Any) -> None:
    proxy_url, upstream, tokens, _ = world
    token = tokens.issue("run-1", "corp", ["anthropic"])["anthropic"]
    got: list[bytes] = []
    async with (
        httpx.AsyncClient() as agent,
        agent.stream(
            "POST", f"{proxy_url}/anthropic/v1/stream", headers={"x-api-key": token}, json={"stream": True}
        ) as answer,
    ):
        chunks = answer.aiter_raw()
        for n, gate in enumerate(upstream.release):
            gate.set()  # the upstream sends chunk n only now: a proxy that buffered would never show it
            got.append(await asyncio.wait_for(anext(chunks), 10))
            assert f'"n": {n}'.encode() in got[-1]
    assert b"".join(got).count(b"event: delta") == 3


async def test_the_real_key_echoed_by_the_upstream_is_masked_in_body_and_headers(world: Any) -> None:
    proxy_url, _, tokens, proxy = world
    token = tokens.issue("run-1", "corp", ["anthropic"])["anthropic"]
    async with httpx.AsyncClient() as agent:
        answer = await agent.get(f"{proxy_url}/anthropic/echo", headers={"x-api-key": token})
    assert KEY not in answer.text and KEY not in str(answer.headers)
    assert answer.json() == {"said": "*" * len(KEY), "again": "*" * len(KEY)}
    assert answer.headers["x-echo"] == "key=" + "*" * len(KEY)
    assert proxy.usage["run-1"].bytes_down == len(answer.content)


async def test_an_unreadable_secret_is_a_502_naming_it_and_nothing_is_sent(world: Any) -> None:
    _proxy_url, _upstream, tokens, _ = world
    configured: dict[str, str] = {}
    async with upstream_client() as client:
        upstreams = {"x": Upstream(name="x", base_url="http://127.0.0.1:9/", secret="MISSING")}

        async def secret(name: str) -> str:
            return configured[name]

        proxy = CredentialProxy(upstreams, tokens, secret, client=client)
        async with serving(proxy.app()) as url, httpx.AsyncClient() as agent:
            token = tokens.issue("run-2", "corp", ["x"])["x"]
            answer = await agent.get(f"{url}/x/anything", headers={"x-api-key": token})
    assert answer.status_code == 502 and "MISSING" in answer.text


# ------------------------------------------------------------------------------------------------ the scrubber
@given(
    before=st.binary(max_size=50),
    after=st.binary(max_size=50),
    secret=st.binary(min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_the_scrubber_masks_the_secret_however_the_stream_is_cut(
    before: bytes, after: bytes, secret: bytes, cuts: list[int]
) -> None:
    stream = before + secret + after + secret
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    scrubber = KeyScrubber(secret)
    out = b"".join(scrubber.feed(chunk) for chunk in chunks) + scrubber.finish()
    assert out == stream.replace(secret, b"*" * len(secret))
    assert len(out) == len(stream)


@given(text=st.text(alphabet="abcdefghij \n{}:", max_size=200), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_the_scrubber_holds_nothing_back_when_no_tail_could_begin_the_key(text: str, cuts: list[int]) -> None:
    data = text.encode()
    scrubber = KeyScrubber(KEY.encode())  # starts with 's', which the alphabet lacks
    last = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        assert scrubber.feed(data[last:cut]) == data[last:cut]
        last = cut
    assert scrubber.finish() == b""


# ------------------------------------------------------------------------------------------------ the tokens
def test_a_token_is_good_for_its_run_group_and_upstream_only_and_while_the_run_lives() -> None:
    live = {"20261130-ab12", "other"}
    tokens = RunTokens(b"s" * 32, is_live=live.__contains__)
    token = tokens.issue("20261130-ab12", "corp/eng", ["anthropic"])["anthropic"]
    assert tokens.check(token, "anthropic") == Grant("20261130-ab12", "corp/eng", "anthropic")
    assert tokens.check(token, "openai") is None
    assert RunTokens(b"t" * 32, is_live=live.__contains__).check(token, "anthropic") is None  # another data dir
    other_payload = tokens.issue("other", "corp/eng", ["anthropic"])["anthropic"].removeprefix(TOKEN_PREFIX)
    forged = TOKEN_PREFIX + other_payload.split(".")[0] + "." + token.rsplit(".", 1)[1]
    assert tokens.check(forged, "anthropic") is None  # another run's payload under this run's signature
    live.discard("20261130-ab12")
    assert tokens.check(token, "anthropic") is None  # the run ended: revoked


@given(token=st.text(max_size=200))
def test_no_made_up_token_is_accepted(token: str) -> None:
    tokens = RunTokens(b"s" * 32, is_live=lambda run_id: True)
    assert tokens.check(token, "anthropic") is None
    assert tokens.check(TOKEN_PREFIX + token, "anthropic") is None


@given(position=st.integers(min_value=len(TOKEN_PREFIX), max_value=200), char=st.sampled_from("AZaz09-_."))
def test_changing_any_character_of_a_token_spoils_it(position: int, char: str) -> None:
    tokens = RunTokens(b"s" * 32, is_live=lambda run_id: True)
    token = tokens.issue("run-1", "corp", ["anthropic"])["anthropic"]
    position %= len(token)
    changed = token[:position] + char + token[position + 1 :]
    if changed != token:
        assert tokens.check(changed, "anthropic") is None
