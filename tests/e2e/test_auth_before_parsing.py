"""A body that does not parse is answered after the credentials were checked, on every route that asks for them.

FastAPI parses a body before it runs the route's dependencies: malformed JSON got a 422 "JSON decode error" and a
multipart body without its boundary a 400, JSON nested too deeply to parse a 400, all before the authentication
dependency ran, so a caller with no credentials learned how each endpoint parses its body. The operations come from
the OpenAPI document, so a route added later is checked as well.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kanmon.web import WebConfig, create_app
from kanmon.web.tokens import new_api_key, token_hash
from tests.gateway_harness import Harness, process_group, running_gateway

SECRET = "channel-secret-for-parsing-tests"
WEB_TOKEN = "corp-web-token-for-parsing-tests"
ADAPTER = {"name": "tg", "url": "http://127.0.0.1:9/bot", "jid_prefixes": ["telegram:"]}
MALFORMED = {
    "application/json": ('{"chat_jid": ', "application/json"),
    "multipart/form-data": ("--x\r\nContent-Disposition: form-data; name=file\r\n\r\nab", "multipart/form-data"),
}


@dataclass(frozen=True)
class Operation:
    method: str
    url: str
    media: str
    schemes: frozenset[str]


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of the OpenAPI document that takes a body and asks for credentials."""
    found = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            media = list(op.get("requestBody", {}).get("content", {}))
            if media and op.get("security"):
                schemes = frozenset(name for requirement in op["security"] for name in requirement)
                found.append(Operation(method.upper(), re.sub(r"\{[^}]+\}", "corp", path), media[0], schemes))
    return found


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[Harness, httpx.AsyncClient, dict[str, str], list[Operation]]]:
    """A gateway's app, a right credential for each security scheme of its document, and its operations to check."""
    async with running_gateway(tmp_path / "data", [process_group("corp")]) as h:
        app = create_app(h.gateway, WebConfig(channel_secret=SECRET))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kanmon") as client:
            registered = await client.post("/v1/channels/register", json=ADAPTER, headers=bearer(SECRET))
            h.store.set_group_web_token("corp", token_hash(WEB_TOKEN))
            key = new_api_key()
            h.store.add_api_key(key.key_id, key.key_hash, ["corp"])
            right = {
                "channelSecret": SECRET,
                "adapterToken": registered.json()["token"],
                "webToken": WEB_TOKEN,
                "apiKey": key.key,
            }
            yield h, client, right, operations(app.openapi())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored(h: Harness) -> tuple[Any, ...]:
    rows = [(m.seq, m.chat_jid, m.content) for m in h.store.new_messages(0, limit=100_000)]
    return rows, [(c.name, c.token_hash) for c in h.store.list_channels()], h.store.counts()["chats"]


async def test_a_body_that_does_not_parse_gets_401_without_credentials_and_its_parse_error_with_them(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as (h, client, right, ops):
        assert {op.media for op in ops} == set(MALFORMED)  # both kinds of body are covered
        assert len(ops) >= 6
        before = stored(h)
        mistakes: list[str] = []
        for op in ops:
            body, content_type = MALFORMED[op.media]
            for who, headers in {"none": {}, "wrong": bearer("not-a-credential")}.items():
                answer = await client.request(
                    op.method, op.url, content=body, headers=headers | {"Content-Type": content_type}
                )
                if answer.status_code != 401:
                    mistakes.append(
                        f"{op.method} {op.url} ({who} credentials): {answer.status_code} {answer.text[:200]}"
                    )
            [scheme] = sorted(op.schemes - {"webTokenQuery"})
            headers = bearer(right[scheme]) | {"Content-Type": content_type}
            answer = await client.request(op.method, op.url, content=body, headers=headers)
            if scheme == "apiKey":  # the OpenAI-compatible API answers in OpenAI's error shape
                error = answer.json()["error"]
                expected = answer.status_code == 400 and (error["type"], error["message"]) == (
                    "invalid_request_error", "The body is not valid JSON."
                )  # fmt: skip
            elif op.media == "application/json":
                expected = (answer.status_code, answer.json()) == (
                    422, {"detail": [{"loc": ["body", "13"], "msg": "JSON decode error", "type": "json_invalid"}]}
                )  # fmt: skip
            else:
                expected = (answer.status_code, answer.json()) == (400, {"detail": "Missing boundary in multipart."})
            if not expected:
                mistakes.append(f"{op.method} {op.url} (right credentials): {answer.status_code} {answer.text[:200]}")
        assert not mistakes, "\n".join(mistakes)
        assert stored(h) == before


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON, nested deeper than Python's parser recurses (200 kB: under 1 MiB)


async def test_json_nested_too_deep_to_parse_gets_401_without_credentials_and_one_clear_error_with_them(
    tmp_path: Path,
) -> None:
    """The parser gives up on such a body with RecursionError, not the ValueError of malformed JSON: FastAPI answered
    it "400 There was an error parsing the body" before the credentials were asked for, and the OpenAI-compatible
    API, which reads its own body, answered an authenticated caller 500."""
    async with served(tmp_path) as (h, client, right, ops):
        ops = [op for op in ops if op.media == "application/json"]
        assert len(ops) >= 4
        before = stored(h)
        mistakes: list[str] = []
        for op in ops:
            headers = {"Content-Type": "application/json"}
            for who, auth in {"none": {}, "wrong": bearer("not-a-credential")}.items():
                answer = await client.request(op.method, op.url, content=DEEP, headers=headers | auth)
                if answer.status_code != 401:
                    mistakes.append(
                        f"{op.method} {op.url} ({who} credentials): {answer.status_code} {answer.text[:200]}"
                    )
            [scheme] = sorted(op.schemes - {"webTokenQuery"})
            answer = await client.request(op.method, op.url, content=DEEP, headers=headers | bearer(right[scheme]))
            said: Any = answer.json() if answer.headers.get("content-type") == "application/json" else answer.text
            if scheme == "apiKey":  # the OpenAI-compatible API answers in OpenAI's error shape
                message = "The body is not valid JSON."
                expected = answer.status_code == 400 and said["error"]["message"] == message
            else:
                expected = answer.status_code == 422 and [error["type"] for error in said["detail"]] == ["json_invalid"]
            if not expected:
                mistakes.append(f"{op.method} {op.url} (right credentials): {answer.status_code} {answer.text[:200]}")
        assert not mistakes, "\n".join(mistakes)
        assert stored(h) == before
