"""The OpenAPI document (issue 18 item 4): valid OpenAPI 3.1, an example on every body that validates against its
schema, one error model that is what the app really answers, security on every authenticated route, the web chat's
events described, and the adapter's side of the protocol as webhooks that match what kanmon really sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from kanmon.clock import FakeClock
from kanmon.gateway.adapter_files import AdapterFiles
from kanmon.gateway.adapters import adapter_body
from kanmon.gateway.media_links import MediaLinks
from kanmon.web import WebConfig
from tests.e2e.test_web_chat import asgi_client, bearer, web_chat
from tests.unit.gateway.test_adapter_files import SMALL, stored
from tests.unit.gateway.test_adapter_send_body import row

SECRET = "openapi-test-channel-secret"
BINARY = {"type": "string", "format": "binary"}
KANMON_ERROR = "#/components/schemas/ErrorBody"
OPENAI_ERROR = "#/components/schemas/OpenAIError"
CANNOT_FAIL = {"/healthz", "/metrics"}  # no input, no store: they answer 200 or nothing


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = WebConfig(channel_secret=SECRET, max_body_bytes=4096)
    async with web_chat(tmp_path, config) as (_h, app), asgi_client(app) as client:
        yield client


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def operations(document: dict[str, Any], kind: str = "paths") -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in document[kind].items() for method, op in item.items()]


def bodies(operation: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(which, media type, media object) of the request body and every response."""
    found = [
        ("request", media_type, media)
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
    ]
    for status, response in operation["responses"].items():
        found += [(status, media_type, media) for media_type, media in response.get("content", {}).items()]
    return found


def validator(schema: dict[str, Any], document: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/…`` references resolve in ``document``."""
    return Draft202012Validator({**schema, "components": document["components"]})


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) of each event of a Server-Sent Events text (``message`` when it names none)."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            events.append((fields.get("event", "message"), fields["data"]))
    return events


# ------------------------------------------------------------------------------------------------ the document
def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises with the first problem


def test_every_body_has_an_example_and_it_validates_against_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for method, path, operation in operations(document) + operations(document, "webhooks"):
        for which, media_type, media in bodies(operation):
            where = f"{method} {path} {which} {media_type}"
            if media.get("schema") == BINARY:
                continue  # a file's bytes: nothing to show
            assert "example" in media, f"{where}: no example"
            example = media["example"]
            if media_type == "application/json":
                errors = [e.message for e in validator(media["schema"], document).iter_errors(example)]
                assert not errors, f"{where}: the example does not fit the schema: {errors}"
            elif media_type == "text/event-stream":
                assert sse_events(example), where
            else:
                assert isinstance(example, str | dict) and example, where
            checked += 1
    assert checked > 40


def test_every_operation_documents_its_errors_with_the_one_error_model(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        errors = {status: r for status, r in operation["responses"].items() if status[0] in "45"}
        if path not in CANNOT_FAIL:
            assert any(status[0] in "45" for status in errors), f"{method} {path}: no error documented"
        openai = "OpenAI-compatible API" in operation["tags"]
        for status, response in errors.items():
            if path == "/readyz":
                continue  # its 503 is the readiness answer, not an error
            schema = response["content"]["application/json"]["schema"]
            expected = OPENAI_ERROR if openai and status != "413" else KANMON_ERROR
            assert schema == {"$ref": expected}, f"{method} {path} {status}"
        if "requestBody" in operation:
            assert "413" in errors, f"{method} {path}: the body limit"
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's, which the app never sends


def test_security_is_declared_on_every_authenticated_route(document: dict[str, Any]) -> None:
    security = {(method, path): op.get("security") for method, path, op in operations(document)}
    assert security[("POST", "/v1/channels/register")] == [{"channelSecret": []}]
    assert security[("GET", "/v1/channels")] == [{"channelSecret": []}]
    for path in ("/v1/messages", "/v1/chats", "/v1/channels/deregister"):
        assert security[("POST", path)] == [{"adapterToken": []}], path
    web = [key for key in security if key[1].startswith("/web/")]
    assert len(web) >= 5
    for key in web:
        expected: list[dict[str, list[str]]] = (
            [{"webToken": []}, {"webTokenQuery": []}] if key[1].endswith("/stream") else [{"webToken": []}]
        )
        assert security[key] == expected, key
    for path in ("/v1/models", "/v1/models/{model}"):
        assert security[("GET", path)] == [{"apiKey": []}]
    assert security[("POST", "/v1/chat/completions")] == [{"apiKey": []}]
    assert security[("GET", "/healthz")] is None and security[("GET", "/chat/{folder}")] is None
    schemes = document["components"]["securitySchemes"]
    assert {name for entry in security.values() for requirement in entry or [] for name in requirement} == set(schemes)


def test_the_stream_describes_its_events_and_its_example_fits_them(document: dict[str, Any]) -> None:
    media = document["paths"]["/web/{folder}/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    payloads = media["schema"]["x-events"]
    assert set(payloads) == {"message", "working"}
    seen = set()
    for event, data in sse_events(media["example"]):
        errors = [e.message for e in validator(payloads[event], document).iter_errors(json.loads(data))]
        assert not errors, f"{event}: {errors}"
        seen.add(event)
    assert seen == {"message", "working"}
    chat_event = document["components"]["schemas"]["ChatEvent"]
    assert chat_event["properties"]["attachments"]["items"] == {"$ref": "#/components/schemas/ChatAttachment"}
    assert set(document["components"]["schemas"]["ChatAttachment"]["properties"]) == {
        "index", "name", "mime", "size", "url", "inline"
    }  # fmt: skip


def test_inbound_attachments_are_typed(document: dict[str, Any]) -> None:
    attachments = document["components"]["schemas"]["InboundMessage"]["properties"]["attachments"]
    item = attachments["anyOf"][0]["items"]
    assert {"name", "mime", "size", "url", "data"} <= set(item["properties"])
    assert item["additionalProperties"] is True  # other keys are kept, never an error


# ------------------------------------------------------------------------------------------------ the truth
async def test_the_error_bodies_the_app_sends_fit_the_error_model(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    error_model = validator({"$ref": KANMON_ERROR}, document)
    openai_model = validator({"$ref": OPENAI_ERROR}, document)
    answers = [
        (401, await client.get("/web/corp/topics", headers=bearer("wrong"))),
        (401, await client.get("/v1/channels")),
        (401, await client.post("/v1/messages", json={}, headers=bearer("not-an-adapter-token"))),
        (404, await client.get("/web/Bad..Name/topics", headers=bearer())),
        (422, await client.post("/web/corp/messages", json={"topic": "t"}, headers=bearer())),
        (400, await client.get("/web/corp/stream", headers={**bearer(), "Last-Event-ID": "x"})),
        (413, await client.post("/web/corp/messages", content=b"x" * 5000, headers=bearer())),
    ]
    for status, answer in answers:
        assert answer.status_code == status, (status, answer.text)
        assert not list(error_model.iter_errors(answer.json())), (status, answer.text)
    openai_answer = await client.get("/v1/models", headers={"Authorization": "Bearer kmk_nothing"})
    assert openai_answer.status_code == 401
    assert not list(openai_model.iter_errors(openai_answer.json())), openai_answer.text
    documented = document["paths"]["/web/{folder}/topics"]["get"]["responses"]
    assert {"401", "404", "422", "503"} <= set(documented)


async def test_the_webhooks_are_the_adapter_side_of_the_protocol(document: dict[str, Any]) -> None:
    webhooks = document["webhooks"]
    assert set(webhooks) == {"send", "typing"}
    send = webhooks["send"]["post"]
    headers = {p["name"] for p in send["parameters"] if p["in"] == "header"}
    assert headers == {"authorization", "idempotency-key"}
    assert {"200", "408", "425", "429", "5XX", "4XX"} <= set(send["responses"])
    schema = send["requestBody"]["content"]["application/json"]["schema"]
    body = validator(schema, document)
    # the bodies kanmon really sends (kanmon.gateway.adapters.adapter_body) fit the declared schema
    for message in (row(), row(topic="", reply_to_id=None), row(content="", attachments=[{"type": "photo"}])):
        sent = await adapter_body(message, "k1-7")
        assert not [e.message for e in body.iter_errors(sent)], sent
    typing = webhooks["typing"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ping = {"chat_jid": "telegram:1", "thread_id": None, "on": True}  # kanmon.gateway.typing.adapter_ping's body
    assert not list(validator(typing, document).iter_errors(ping))


async def test_the_files_kanmon_sends_fit_the_declared_attachment(tmp_path: Path, document: dict[str, Any]) -> None:
    """An agent's files as /send carries them (kanmon.gateway.adapter_files), inline or by link only."""
    media, records = stored(tmp_path)
    links = MediaLinks(tmp_path / "media" / "url.key", ttl=60.0, clock=FakeClock(), base_url="http://gated:8080")
    try:
        described = await AdapterFiles(media, links, inline_bytes=len(SMALL)).describe(records)
    finally:
        media.close()
    attachment = validator({"$ref": "#/components/schemas/SendAttachment"}, document)
    assert ["data" in item for item in described] == [True, False]
    for item in described:
        assert not [e.message for e in attachment.iter_errors(item)], item
