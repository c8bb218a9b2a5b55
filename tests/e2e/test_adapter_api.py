"""The channel-adapter API: registration, ingest, chats, listing; tokens that survive a restart; bad input refused.

arizuko kept adapter registrations in memory (every token died when gated restarted, and adapters did not register
again), answered a retried message with a bare ``ok``, and validated little. Here a registration is a row of
``channels`` holding only the token's hash, a token keeps working across a restart until the adapter registers again,
a retried message gets the seq it already has, and every malformed request is a 4xx that leaves the tables as they
were. A property test drives every endpoint of the OpenAPI document with bodies generated from its schemas (and with
junk) and allows no 5xx.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kanmon.web import WebConfig, create_app
from kanmon.web.tokens import token_hash
from tests.gateway_harness import Harness, process_group, running_gateway

SECRET = "s3cret-for-adapters"
TG = {"name": "tg", "url": "http://127.0.0.1:9/bot", "jid_prefixes": ["telegram:"], "capabilities": {"send_text": True}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def api(h: Harness, config: WebConfig | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway's HTTP app (in process, through ASGI)."""
    app = create_app(h.gateway, config or WebConfig(channel_secret=SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kanmon") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def register(client: httpx.AsyncClient, **changes: Any) -> str:
    answer = await client.post("/v1/channels/register", json={**TG, **changes}, headers=bearer(SECRET))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and set(body) == {"ok", "token"}
    return str(body["token"])


def tables(h: Harness) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    messages = [(m.seq, m.chat_jid, m.id, m.content) for m in h.store.new_messages(0, limit=100_000)]
    channels = [(c.name, c.url, c.token_hash, c.jid_prefixes, c.capabilities) for c in h.store.list_channels()]
    return messages, channels, h.store.counts()["chats"]


# ---------------------------------------------------------------------------------------------------- the happy paths
async def test_register_ingest_and_chats_store_what_the_adapter_says(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.2) as h, api(h) as client:
        h.store.add_route(seq=0, match="platform=telegram", target="corp")
        token = await register(client)
        [channel] = h.store.list_channels()
        assert channel.token_hash == token_hash(token) and token not in str(channel)

        listed = await client.get("/v1/channels", headers=bearer(SECRET))
        assert listed.status_code == 200
        [entry] = listed.json()
        assert set(entry) == {"name", "url", "jid_prefixes", "capabilities", "registered_at"}
        assert (entry["name"], entry["url"], entry["jid_prefixes"]) == ("tg", TG["url"], ["telegram:"])
        assert entry["capabilities"] == {"send_text": True} and token not in listed.text

        chat = await client.post(
            "/v1/chats", json={"chat_jid": "telegram:-100", "name": "Ops", "is_group": True}, headers=bearer(token)
        )
        assert (chat.status_code, chat.json()) == (200, {"ok": True, "chat_jid": "telegram:-100"})
        stored = h.store.get_chat("telegram:-100")
        assert stored is not None and (stored.channel, stored.name, stored.is_group) == ("tg", "Ops", True)

        body = {
            "id": "tg-1",
            "chat_jid": "telegram:-100",
            "sender": "telegram:555",
            "sender_name": "Ann",
            "content": "hello there",
            "timestamp": 1_700_000_000,
            "topic": "12",
            "reply_to": "tg-0",
            "reply_to_text": "earlier",
            "reply_to_sender": "telegram:556",
            "attachments": [{"kind": "photo", "url": "https://example.org/p.jpg"}],
            "attachment_mime": "image/jpeg",  # arizuko's flat WhatsApp fields: ignored, not an error
        }
        first = await client.post("/v1/messages", json=body, headers=bearer(token))
        assert first.status_code == 200, first.text
        assert first.json() == {"ok": True, "seq": first.json()["seq"], "id": "tg-1", "duplicate": False}
        again = await client.post("/v1/messages", json={**body, "content": "changed"}, headers=bearer(token))
        assert again.json() == {**first.json(), "duplicate": True}

        [row] = h.inbound("telegram:-100")
        assert (row.seq, row.id, row.content, row.origin) == (first.json()["seq"], "tg-1", "hello there", "adapter:tg")
        assert (row.sender, row.sender_name, row.topic, row.verb) == ("telegram:555", "Ann", "12", "message")
        assert (row.reply_to_id, row.reply_to_text, row.reply_to_sender) == ("tg-0", "earlier", "telegram:556")
        assert row.timestamp == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
        assert row.attachments == [{"kind": "photo", "url": "https://example.org/p.jpg"}]
        # the loop was woken and the agent answered (delivery to the unreachable adapter is another test's matter)
        await h.wait_for(lambda: h.replies("telegram:-100") == ["echo: hello there"], "the echo reply")

        gone = await client.post("/v1/channels/deregister", headers=bearer(token))
        assert (gone.status_code, gone.json()) == (200, {"ok": True})
        assert h.store.list_channels() == []
        refused = await client.post("/v1/messages", json={**body, "id": "tg-2"}, headers=bearer(token))
        assert refused.status_code == 401


# ids of the forms gated derives for its own rows, each as gated would write it in an adapter's chat
DERIVED = [
    "gw-reply-42",  # the answer to command 42
    "gw-new-42",  # what `/new text` posts again
    "gw-dead-telegram:1-7",  # a dead letter's apology
    "run-20260101000000-0a1b2c3d-0",  # a run's reply
    "run-20260101000000-0a1b2c3d-0-a0",  # an agent's send action
    "pair-offer-42",
    "pair-approved-3",
    "reset-session-1",
    "onboard-7",
    "budget-corp-2026-01-01",
    "task:1:2026-01-01T09:00:00Z",  # a scheduled task's occurrence
    "dlg-7",
    "fwd-7",
    "api-1-0123456789abcdef0123456789abcdef",
]


async def test_an_adapter_cannot_store_a_message_under_an_id_gated_derives(tmp_path: Path) -> None:
    # gated finds its own rows again by (chat, id): its answer to command 42 is gw-reply-42. An adapter that stored
    # gw-reply-42 first had command 42 taken for answered (nothing ran, nobody was answered).
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.2) as h, api(h) as client:
        h.store.add_route(seq=0, match="platform=telegram", target="corp")
        token = await register(client)
        before = tables(h)
        for derived in DERIVED:
            squat = await client.post("/v1/messages", json={**MESSAGE, "id": derived}, headers=bearer(token))
            assert squat.status_code == 422, (derived, squat.text)
            assert f"{derived!r} is an id kanmon derives for its own messages" in squat.text
        assert tables(h) == before
        ping = {**MESSAGE, "id": "42", "content": "/ping"}
        assert (await client.post("/v1/messages", json=ping, headers=bearer(token))).status_code == 200
        await h.wait_for(
            lambda: [(m.id, m.content.split("\n")[0]) for m in h.outbound("telegram:1")] == [("gw-reply-42", "pong")],
            "gated's answer to /ping",
        )


async def test_a_token_survives_a_restart_and_registering_again_rotates_it(tmp_path: Path) -> None:
    message = {"chat_jid": "telegram:1", "sender": "telegram:2", "content": "before"}
    async with running_gateway(tmp_path / "data", [process_group("corp")]) as h, api(h) as client:
        token = await register(client)
        assert (await client.post("/v1/messages", json=message, headers=bearer(token))).status_code == 200

    async with running_gateway(tmp_path / "data", [process_group("corp")]) as h, api(h) as client:  # restarted
        after = await client.post("/v1/messages", json={**message, "content": "after"}, headers=bearer(token))
        assert after.status_code == 200, after.text
        rotated = await register(client, url="http://127.0.0.1:9/v2")
        assert rotated != token
        old = await client.post("/v1/messages", json={**message, "content": "old"}, headers=bearer(token))
        assert old.status_code == 401 and "unknown adapter token" in old.json()["detail"]
        new = await client.post("/v1/messages", json={**message, "content": "new"}, headers=bearer(rotated))
        assert new.status_code == 200
        assert [row.content for row in h.inbound("telegram:1")] == ["before", "after", "new"]
        [channel] = h.store.list_channels()
        assert (channel.url, channel.token_hash) == ("http://127.0.0.1:9/v2", token_hash(rotated))


async def test_without_a_channel_secret_registration_is_disabled(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", []) as h, api(h, WebConfig(channel_secret="")) as client:
        for request in [
            client.post("/v1/channels/register", json=TG, headers=bearer("")),
            client.post("/v1/channels/register", json=TG, headers=bearer("anything")),
            client.get("/v1/channels", headers=bearer("anything")),
        ]:
            answer = await request
            assert answer.status_code == 403
            assert answer.json()["detail"] == "channel registration is disabled: set http.channel_secret"
        assert h.store.list_channels() == []


async def test_writes_are_refused_while_gated_drains(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", []) as h, api(h) as client:
        token = await register(client)
        client.app.state.draining = True  # type: ignore[attr-defined]
        before = tables(h)
        message = {"chat_jid": "telegram:1", "sender": "x", "content": "late"}
        assert (await client.post("/v1/messages", json=message, headers=bearer(token))).status_code == 503
        assert (await client.post("/v1/channels/register", json=TG, headers=bearer(SECRET))).status_code == 503
        assert (await client.get("/v1/channels", headers=bearer(SECRET))).status_code == 200  # reads still work
        assert tables(h) == before


async def test_a_prefix_another_adapter_owns_is_409_naming_it_and_its_chats_stay_its_own(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", []) as h, api(h) as client:
        tg = await register(client)  # telegram:
        before = tables(h)
        for prefixes in (["telegram:"], ["telegram:-100:"], ["discord:", "telegram:-100:x:"]):
            body = {**TG, "name": "mallory", "jid_prefixes": prefixes}
            refused = await client.post("/v1/channels/register", json=body, headers=bearer(SECRET))
            assert refused.status_code == 409, (prefixes, refused.text)
            assert "channel adapter 'tg'" in refused.json()["detail"]
            assert tables(h) == before
        # the owner may rotate its token and narrow its prefixes; another adapter gets what is free
        tg = await register(client, jid_prefixes=["telegram:-100:"])
        other = await register(client, name="other", jid_prefixes=["telegram:-200:", "discord:"])
        assert {c.name: c.jid_prefixes for c in h.store.list_channels()} == {
            "other": ["telegram:-200:", "discord:"],
            "tg": ["telegram:-100:"],
        }

        # neither writes into the other's chats: replies to a chat go to the one adapter that owns its JID
        mine: dict[str, object] = {"chat_jid": "discord:1", "sender": "discord:2", "content": "hi"}
        assert (await client.post("/v1/messages", json=mine, headers=bearer(other))).status_code == 200
        chat: dict[str, object] = {"chat_jid": "discord:1", "name": "taken"}
        for path, sent in (("/v1/messages", mine), ("/v1/chats", chat)):
            answer = await client.post(path, json=sent, headers=bearer(tg))
            assert answer.status_code == 400 and "prefixes (telegram:-100:)" in answer.json()["detail"]
        stored = h.store.get_chat("discord:1")
        assert stored is not None and (stored.channel, stored.name) == ("other", None)
        assert [row.origin for row in h.inbound("discord:1")] == ["adapter:other"]


# ---------------------------------------------------------------------------------------------------- bad input
MESSAGE = {"chat_jid": "telegram:1", "sender": "telegram:2", "content": "hi"}


@dataclass(frozen=True)
class Bad:
    """A request that must be refused with ``status``, its detail mentioning ``says``."""

    what: str
    path: str
    auth: str  # secret | token | none | wrong-secret | wrong-token | basic | token-as-secret | secret-as-token
    body: Any  # JSON-able, or bytes sent as they are
    status: int
    says: str = ""


BAD = [
    # registration
    Bad("no auth", "/v1/channels/register", "none", TG, 401, "missing Authorization"),
    Bad("wrong secret", "/v1/channels/register", "wrong-secret", TG, 401, "wrong channel secret"),
    Bad("basic auth", "/v1/channels/register", "basic", TG, 401, "missing Authorization"),
    Bad("a token for the secret", "/v1/channels/register", "token-as-secret", TG, 401, "wrong channel secret"),
    Bad("bad JSON", "/v1/channels/register", "secret", b'{"name": "tg",', 422, "JSON"),
    Bad("a JSON array", "/v1/channels/register", "secret", [TG], 422, ""),
    Bad("no name", "/v1/channels/register", "secret", {k: v for k, v in TG.items() if k != "name"}, 422, "name"),
    Bad("no url", "/v1/channels/register", "secret", {k: v for k, v in TG.items() if k != "url"}, 422, "url"),
    Bad("no prefixes", "/v1/channels/register", "secret", {**TG, "jid_prefixes": []}, 422, "jid_prefixes"),
    Bad("prefixes as a string", "/v1/channels/register", "secret", {**TG, "jid_prefixes": "telegram:"}, 422, "list"),
    Bad("a bad name", "/v1/channels/register", "secret", {**TG, "name": "Tele Gram"}, 422, "name"),
    Bad("a built-in name", "/v1/channels/register", "secret", {**TG, "name": "web"}, 422, "built-in"),
    Bad("an ftp url", "/v1/channels/register", "secret", {**TG, "url": "ftp://127.0.0.1/x"}, 422, "http"),
    Bad("a url with a password", "/v1/channels/register", "secret", {**TG, "url": "http://u:p@h/x"}, 422, "creden"),
    Bad("a url with a query", "/v1/channels/register", "secret", {**TG, "url": "http://h/x?a=1"}, 422, "query"),
    Bad("a prefix without ':'", "/v1/channels/register", "secret", {**TG, "jid_prefixes": ["telegram"]}, 422, "prefix"),
    Bad("web: is reserved", "/v1/channels/register", "secret", {**TG, "jid_prefixes": ["web:"]}, 422, "reserved"),
    Bad("local: is reserved", "/v1/channels/register", "secret", {**TG, "jid_prefixes": ["local:x:"]}, 422, "reserved"),
    Bad("daemon: is reserved", "/v1/channels/register", "secret", {**TG, "jid_prefixes": ["daemon:"]}, 422, "reserved"),
    Bad("capabilities as a list", "/v1/channels/register", "secret", {**TG, "capabilities": ["typing"]}, 422, ""),
    Bad("an oversized body", "/v1/channels/register", "secret", {**TG, "pad": "x" * 5000}, 413, "larger than"),
    # messages
    Bad("no token", "/v1/messages", "none", MESSAGE, 401, "missing Authorization"),
    Bad("a wrong token", "/v1/messages", "wrong-token", MESSAGE, 401, "unknown adapter token"),
    Bad("the secret for a token", "/v1/messages", "secret-as-token", MESSAGE, 401, "unknown adapter token"),
    Bad("bad JSON", "/v1/messages", "token", b'{"chat_jid": ', 422, "JSON"),
    Bad("not JSON at all", "/v1/messages", "token", b"chat_jid=telegram:1&content=hi", 422, ""),
    Bad("no chat_jid", "/v1/messages", "token", {"sender": "x", "content": "hi"}, 422, "chat_jid"),
    Bad("no content", "/v1/messages", "token", {"chat_jid": "telegram:1", "sender": "x"}, 422, "content"),
    Bad("no sender", "/v1/messages", "token", {"chat_jid": "telegram:1", "content": "hi"}, 422, "sender"),
    Bad("empty content", "/v1/messages", "token", {**MESSAGE, "content": ""}, 422, "content is empty"),
    Bad("content as a number", "/v1/messages", "token", {**MESSAGE, "content": 42}, 422, "content"),
    Bad("a word for a timestamp", "/v1/messages", "token", {**MESSAGE, "timestamp": "yesterday"}, 422, "timestamp"),
    Bad("a negative timestamp", "/v1/messages", "token", {**MESSAGE, "timestamp": -1}, 422, "timestamp"),
    Bad(
        "a NaN timestamp",
        "/v1/messages",
        "token",
        b'{"chat_jid":"telegram:1","sender":"x","content":"hi","timestamp":NaN}',
        422,
        "timestamp",
    ),
    Bad("attachments as a dict", "/v1/messages", "token", {**MESSAGE, "attachments": {"a": 1}}, 422, "attachments"),
    Bad(
        "an attachment url that is not http",
        "/v1/messages",
        "token",
        {**MESSAGE, "attachments": [{"name": "p", "url": "file:///etc/passwd"}]},
        422,
        "an attachment's url must be an http:// or https:// URL",
    ),
    Bad(
        "attachment data that is not base64",
        "/v1/messages",
        "token",
        {**MESSAGE, "attachments": [{"name": "p", "data": "%%%"}]},
        422,
        "an attachment's data is not base64",
    ),
    Bad("a NUL in the message id", "/v1/messages", "token", {**MESSAGE, "id": "a\x00b"}, 422, "NUL"),
    Bad(
        "a lone surrogate in the sender",
        "/v1/messages",
        "token",
        b'{"chat_jid":"telegram:1","sender":"\\ud800","content":"x"}',
        422,
        "unicode",
    ),
    Bad(
        "an unknown prefix",
        "/v1/messages",
        "token",
        {**MESSAGE, "chat_jid": "discord:1"},
        400,
        "does not start with one of this adapter's prefixes",
    ),
    Bad("a web: chat", "/v1/messages", "token", {**MESSAGE, "chat_jid": "web:corp"}, 400, "prefixes"),
    Bad("only the prefix", "/v1/messages", "token", {**MESSAGE, "chat_jid": "telegram:"}, 400, "names no chat"),
    Bad("a JID with a space", "/v1/messages", "token", {**MESSAGE, "chat_jid": "telegram:a b"}, 422, "white space"),
    Bad("an oversized body", "/v1/messages", "token", {**MESSAGE, "content": "x" * 5000}, 413, "larger than"),
    # chats, deregistration
    Bad("an unknown prefix", "/v1/chats", "token", {"chat_jid": "discord:1"}, 400, "prefixes"),
    Bad("no chat_jid", "/v1/chats", "token", {"name": "x"}, 422, "chat_jid"),
    Bad("a wrong token", "/v1/chats", "wrong-token", {"chat_jid": "telegram:1"}, 401, "unknown adapter token"),
    Bad("a wrong token", "/v1/channels/deregister", "wrong-token", None, 401, "unknown adapter token"),
    Bad("the secret", "/v1/channels/deregister", "secret-as-token", None, 401, "unknown adapter token"),
]


async def test_a_nul_or_a_lone_surrogate_in_what_someone_wrote_is_stored_replaced_not_refused(tmp_path: Path) -> None:
    """A platform lets such text through (Synapse serves a body with a NUL back as it was sent); a 422 made the
    adapter drop the message for good (an outside review). Ids and JIDs with them are still refused (above)."""
    async with (
        running_gateway(tmp_path / "data", []) as h,
        api(h, WebConfig(channel_secret=SECRET)) as client,
    ):
        token = await register(client)
        body = (
            b'{"id": "m-1", "chat_jid": "telegram:1", "sender": "telegram:2", "sender_name": "Al\\u0000ice",'
            b' "content": "before\\u0000after \\ud800", "reply_to_text": "q\\u0000", "reply_to_sender": "b\\ud800"}'
        )
        answer = await client.post(
            "/v1/messages", content=body, headers={**bearer(token), "Content-Type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
        stored = h.store.get_message("telegram:1", "m-1")
        assert stored is not None
        assert (stored.content, stored.sender_name) == ("before\ufffdafter \ufffd", "Al\ufffdice")
        assert (stored.reply_to_text, stored.reply_to_sender) == ("q\ufffd", "b\ufffd")


async def test_bad_requests_are_refused_with_a_clear_4xx_and_change_nothing(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path / "data", []) as h,
        api(h, WebConfig(channel_secret=SECRET, max_body_bytes=4096)) as client,
    ):
        token = await register(client)
        await client.post("/v1/messages", json={**MESSAGE, "id": "m-0"}, headers=bearer(token))
        headers = {
            "secret": bearer(SECRET),
            "token": bearer(token),
            "none": {},
            "wrong-secret": bearer(SECRET + "x"),
            "wrong-token": bearer(token[:-2] + "xx"),
            "basic": {"Authorization": f"Basic {SECRET}"},
            "token-as-secret": bearer(token),
            "secret-as-token": bearer(SECRET),
        }
        before = tables(h)
        mistakes: list[str] = []
        for bad in BAD:
            if isinstance(bad.body, bytes):
                sent = {"content": bad.body, "headers": {**headers[bad.auth], "Content-Type": "application/json"}}
            elif bad.body is None:
                sent = {"headers": headers[bad.auth]}
            else:
                sent = {"json": bad.body, "headers": headers[bad.auth]}
            answer = await client.post(bad.path, **sent)  # type: ignore[arg-type]
            detail = json.dumps(answer.json().get("detail"))
            if answer.status_code != bad.status or bad.says not in detail:
                mistakes.append(f"{bad.path} {bad.what}: {answer.status_code} {detail[:300]}")
            if tables(h) != before:
                mistakes.append(f"{bad.path} {bad.what}: changed the tables")
                before = tables(h)
        assert mistakes == []
        wrong = await client.get("/v1/channels", headers=bearer("nope"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


# ---------------------------------------------------------------------------------------------------- no input is a 5xx
SPECIAL_STRINGS = [  # valid values for the probe adapter's fields, and the edges of each check
    "telegram:1", "telegram:2", "telegram:", "telegram:a b", "discord:1", "web:corp", "local:x", "discord:", "hello",
    "", " ", "\x00", "a\x00b", "\ud800", "x" * 600, "http://127.0.0.1:9/x", "ftp://h", "http://[::1",
    "http://h:99999", "NaN", "telegram:\u202e",
]  # fmt: skip
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(SPECIAL_STRINGS),
)
JSON_JUNK = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any], components: dict[str, Any], *, edgy: bool) -> st.SearchStrategy[Any]:
    """Values for a JSON schema of the OpenAPI document.

    Plausible ones pass the schema. An ``edgy`` object is a plausible one with one field changed (to an edgy value
    of its own schema, to junk, or removed), so the odd value gets past everything else and deep into the handler;
    an edgy leaf is an edge case of its type, or junk.
    """
    schema = _resolve(schema, components)
    plausible = _values(schema, components, edgy=False)
    if not edgy:
        return plausible
    if schema.get("type") == "object" and schema.get("properties"):
        properties = schema["properties"]

        def change_one(body: dict[str, Any]) -> st.SearchStrategy[Any]:
            def changed(name: str) -> st.SearchStrategy[Any]:
                odd = from_schema(properties[name], components, edgy=True)
                removed = st.just({k: v for k, v in body.items() if k != name})
                return st.one_of(odd.map(lambda value: {**body, name: value}), removed)

            return st.sampled_from(sorted(properties)).flatmap(changed)

        return plausible.flatmap(change_one)
    return st.one_of(_values(schema, components, edgy=True), JSON_JUNK)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


# Values that pass the checks no schema states (the probe adapter's prefix, a URL kanmon accepts): without them,
# hardly any generated request would get past validation to the store.
GOOD = {
    "chat_jid": st.sampled_from(["telegram:1", "telegram:2", "telegram:-100"]),
    "url": st.sampled_from(["http://127.0.0.1:9/x", "https://adapter.example/bot"]),
    "jid_prefixes": st.lists(st.sampled_from(["telegram:", "discord:", "slack:team-1:"]), min_size=1, max_size=3),
    "content": st.text(min_size=1, max_size=40),
}
PLAIN_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40)
EDGE_NUMBERS = st.sampled_from([0, -1, 0.5, 2**31, 2**63, 1e12, 1e20, 1e300, 10**400, -(10**400)])


def _values(schema: dict[str, Any], components: dict[str, Any], *, edgy: bool) -> st.SearchStrategy[Any]:
    schema = _resolve(schema, components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([from_schema(option, components, edgy=edgy) for option in schema[key]])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {name: _field(name, sub, components) for name, sub in properties.items()}
        known = st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            more = st.dictionaries(PLAIN_TEXT, from_schema(extra, components, edgy=edgy), max_size=4)
            return st.tuples(known, more).map(lambda pair: {**pair[1], **pair[0]})
        return known
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components, edgy=edgy), max_size=5)
    if kind == "string":
        strings = [st.sampled_from(SPECIAL_STRINGS), st.text(max_size=40)] if edgy else [PLAIN_TEXT]
        if "pattern" in schema:  # "$" would let a trailing newline through, which the server's regex refuses
            matching = st.from_regex(schema["pattern"].rstrip("$") + r"\Z", fullmatch=True)
            strings = [matching, *strings] if edgy else [matching]
        return st.one_of(strings)
    if kind in ("integer", "number"):
        if edgy:
            return st.one_of(EDGE_NUMBERS, st.integers(), st.floats())
        return st.one_of(st.integers(0, 4_000_000_000), st.floats(0, 4e9))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if edgy:
        return JSON_JUNK
    return st.recursive(
        st.none() | st.booleans() | st.integers(-1000, 1000) | PLAIN_TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PLAIN_TEXT, inner, max_size=3),
        max_leaves=8,
    )


def _field(name: str, schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A plausible value of the property ``name``."""
    return GOOD[name] if name in GOOD else from_schema(schema, components, edgy=False)


@dataclass
class Probe:
    """The app under the property test, and the credentials it may use."""

    h: Harness
    client: httpx.AsyncClient
    token: str
    operations: list[tuple[str, str, dict[str, Any] | None]]
    components: dict[str, Any]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def probe(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Probe]:
    """The adapter API on each backend (PostgreSQL refuses what SQLite takes, such as NUL in text)."""
    store_url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    async with (
        running_gateway(tmp_path / "data", [], store_url=store_url) as h,
        api(h, WebConfig(channel_secret=SECRET, max_body_bytes=8192)) as client,
    ):
        token = await register(client, name="probe-adapter-0")
        document = (await client.get("/openapi.json")).json()
        operations = []
        for path, methods in document["paths"].items():
            if not path.startswith("/v1/"):
                continue
            for method, operation in methods.items():
                content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                operations.append((method.upper(), path, content.get("schema")))
        assert {path for _, path, _ in operations} == {
            "/v1/channels/register",
            "/v1/channels/deregister",
            "/v1/channels",
            "/v1/messages",
            "/v1/chats",
            # the OpenAI-compatible API shares the prefix: fuzzed the same way (no 5xx for any body or credential)
            "/v1/models",
            "/v1/models/{model}",
            "/v1/chat/completions",
        }
        yield Probe(h, client, token, operations, document["components"]["schemas"])


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_no_request_to_the_adapter_api_gets_a_5xx(probe: Probe, data: st.DataObject) -> None:
    method, path, schema = data.draw(st.sampled_from(probe.operations), label="operation")
    right = "secret" if path in ("/v1/channels/register", "/v1/channels") else "token"
    auth = data.draw(st.sampled_from([right, right, right, right, "secret", "token", "none", "junk"]), label="auth")
    credential = {"none": None, "secret": SECRET, "token": probe.token, "junk": data.draw(st.text(max_size=30))}[auth]
    headers: dict[bytes, bytes] = {}
    if credential is not None:  # any bytes a real HTTP header can carry (not CR, LF or NUL)
        value = "".join(ch for ch in f"Bearer {credential}" if ch not in "\r\n\x00")
        headers[b"Authorization"] = value.encode("utf-8", "surrogatepass")
    kind = data.draw(st.sampled_from(["plausible", "edgy", "edgy", "json-junk", "bytes"]), label="body kind")
    if kind in ("plausible", "edgy") and schema is not None:
        body = data.draw(from_schema(schema, probe.components, edgy=kind == "edgy"), label="body")
        content = json.dumps(body).encode()
    elif kind == "json-junk" or schema is None:
        content = json.dumps(data.draw(JSON_JUNK, label="body")).encode()
    else:
        content = data.draw(st.binary(max_size=10_000), label="body")
    headers[b"Content-Type"] = data.draw(
        st.sampled_from([b"application/json"] * 4 + [b"text/plain", b"application/x-www-form-urlencoded"])
    )
    try:
        answer = await probe.client.request(method, path, content=content, headers=headers)
        event(f"{path} {auth} {answer.status_code}")  # --hypothesis-show-statistics: what the examples reached
        assert answer.status_code < 500, f"{method} {path} -> {answer.status_code}: {answer.text[:500]}"
    finally:
        # a generated registration may have rotated or removed the probe's adapter: give it its token back
        channels = {channel.name: channel for channel in probe.h.store.list_channels()}
        current = channels.get("probe-adapter-0")
        if current is None or current.token_hash != token_hash(probe.token):
            probe.token = await register(probe.client, name="probe-adapter-0")


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


EDGE_VALUES: list[Any] = [
    *SPECIAL_STRINGS,
    *[0, -1, 0.5, 2**31, 2**63, 1e12, 1e20, 1e300, 10**400, -(10**400)],
    float("nan"), float("inf"), float("-inf"), None, True, False, [], {}, [None], {"a": None},
    ["telegram:"] * 40, {f"k{n}": n for n in range(70)}, {"\ud800": 1}, {"a": "\x00"}, {"a": float("nan")},
    [{"a": "\ud800"}], _nested(15), _nested(40), _nested(900),
]  # fmt: skip
BASE_BODIES: dict[str, dict[str, Any]] = {
    "/v1/channels/register": {**TG, "name": "edge-adapter", "jid_prefixes": ["edge:"]},  # the probe has telegram:
    "/v1/messages": {**MESSAGE, "id": "edge", "timestamp": 1_700_000_000, "topic": "t", "attachments": [{"a": 1}]},
    "/v1/chats": {"chat_jid": "telegram:1", "name": "a chat", "is_group": False},
    # no API key here: every one is a 401 in OpenAI's shape, never a 5xx
    "/v1/chat/completions": {"model": "corp", "messages": [{"role": "user", "content": "hi"}], "user": "u"},
}


async def test_every_field_of_every_body_takes_every_edge_value_without_a_5xx(probe: Probe) -> None:
    """The deterministic half of the property test: each field of each body, set to each edge value or removed."""
    with_bodies = {path: schema for _, path, schema in probe.operations if schema is not None}
    assert set(with_bodies) == set(BASE_BODIES)  # a new endpoint needs a base body here
    outcomes: dict[int, int] = {}
    for path, schema in with_bodies.items():
        properties = _resolve(schema, probe.components)["properties"]
        for name in properties:
            base = BASE_BODIES[path]
            bodies = [{k: v for k, v in base.items() if k != name}] + [{**base, name: value} for value in EDGE_VALUES]
            for body in bodies:
                secret = path == "/v1/channels/register"
                headers = {**bearer(SECRET if secret else probe.token), "Content-Type": "application/json"}
                answer = await probe.client.post(path, content=json.dumps(body).encode(), headers=headers)
                assert answer.status_code < 500, f"{path} {name}={body.get(name)!r:.80}: {answer.text[:300]}"
                outcomes[answer.status_code] = outcomes.get(answer.status_code, 0) + 1
    assert outcomes.get(200, 0) > 50 and outcomes.get(422, 0) > 300  # both the accepted and the refused were reached
