"""No secret in any log line (SPEC §14): a real ``gated run --log-level debug`` used the way adapters and browsers do.

At DEBUG the libraries log too (uvicorn's access log prints every request line, query string included), so every
way a secret travels is exercised: the channel secret on registration and on each delivery to the adapter, the
adapter token on ingest, the web token in ``Authorization: Bearer`` and in the stream's ``?token=``, wrong ones of
each. The adapter here also misbehaves: it first answers 503 with the channel secret echoed in its body, which
kanmon puts into a warning. Then every line gated wrote is searched for every secret.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kanmon import redaction
from kanmon.container import echo_agent
from kanmon.container.agent_secrets import SecretSource, read_secrets
from kanmon.gateway import Gateway, GatewayConfig, RunDefaults
from kanmon.gateway.adapters import AdapterDeliveryConfig
from kanmon.redaction import REDACTED, SecretValues
from kanmon.store import Channel
from kanmon.web import WebConfig, create_app
from kanmon.web.tokens import new_token, token_hash
from tests.gateway_harness import process_group, running_gateway
from tests.live_gated import GATED, QUICK_TRIES, FakeAdapter, Output, gated, serving_adapter, wait_until

CHANNEL_SECRET = "chan-SECRET-4f1d9a7e2b"
WRONG_SECRET = "wrong-SECRET-77aa91c3d0"
WRONG_WEB_TOKEN = "wrong-WEBTOKEN-0c4e2f9b61"
WRONG_ADAPTER_TOKEN = "wrong-ADAPTERTOKEN-3b8d7e1f"


@pytest.fixture
def adapter() -> Iterator[FakeAdapter]:
    with serving_adapter() as server:
        yield server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_or_token_reaches_a_debug_log_line(tmp_path: Path, adapter: FakeAdapter, fmt: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = f"http:\n  channel_secret: {CHANNEL_SECRET}\ndelivery:\n  retry_base_delay: 0.2\n"
    (data_dir / "kanmon.yaml").write_text(config)
    command = f"{sys.executable} -I {echo_agent.__file__}"
    added = gated(data_dir, "group", "add", "corp", "--runtime", "process", "--command", command, "--web")
    web_token = re.search(r"#token=([A-Za-z0-9_-]+)$", added, re.M).group(1)  # type: ignore[union-attr]
    gated(data_dir, "route", "add", "--match", "platform=telegram", "--target", "corp")

    proc = subprocess.Popen(
        [
            *GATED,
            "--data-dir",
            str(data_dir),
            "run",
            "--http",
            "127.0.0.1:0",
            "--log-level",
            "debug",
            "--log-format",
            fmt,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KANMON_POLL_INTERVAL": "0.2"},
    )
    output = Output(proc)
    try:
        started = wait_until(lambda: output.find("gated running"), "gated to start")
        url = re.search(r"http=(http://[0-9.:]+)", started).group(1)  # type: ignore[union-attr]
        adapter_token = exercise(url, web_token, adapter)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output.join()

    lines = output.lines
    # the requests were logged (the test would prove nothing otherwise), each secret in none of the lines
    assert any("/web/corp/stream" in line for line in lines) and any("/v1/messages" in line for line in lines)
    assert any("503" in line and "overloaded" in line for line in lines)  # the adapter's answer, without what it echoed
    secrets = {
        "channel secret": CHANNEL_SECRET,
        "adapter token": adapter_token,
        "web token": web_token,
        "wrong channel secret": WRONG_SECRET,
        "wrong web token": WRONG_WEB_TOKEN,
        "wrong adapter token": WRONG_ADAPTER_TOKEN,
    }
    leaks = [f"{name}: {line.strip()}" for line in lines for name, value in secrets.items() if value in line]
    assert leaks == [], "\n".join(leaks)


def exercise(url: str, web_token: str, adapter: FakeAdapter) -> str:
    """Register, ingest, deliver, post, stream and fail to authenticate; returns the adapter's token."""
    with httpx.Client(base_url=url, timeout=30) as client:
        refused = client.post("/v1/channels/register", json={}, headers={"Authorization": f"Bearer {WRONG_SECRET}"})
        assert refused.status_code == 401
        registration = {"name": "tg", "url": adapter.url, "jid_prefixes": ["telegram:"]}
        registered = client.post(
            "/v1/channels/register", json=registration, headers={"Authorization": f"Bearer {CHANNEL_SECRET}"}
        )
        assert registered.status_code == 200, registered.text
        token = str(registered.json()["token"])
        listed = client.get("/v1/channels", headers={"Authorization": f"Bearer {CHANNEL_SECRET}"})
        assert listed.status_code == 200

        message = {"id": "m-1", "chat_jid": "telegram:1", "sender": "telegram:2", "content": "hello"}
        wrong = client.post("/v1/messages", json=message, headers={"Authorization": f"Bearer {WRONG_ADAPTER_TOKEN}"})
        assert wrong.status_code == 401
        ingested = client.post("/v1/messages", json=message, headers={"Authorization": f"Bearer {token}"})
        assert ingested.status_code == 200, ingested.text
        # the reply goes to the adapter with the channel secret: a failed attempt (503, secret echoed), then taken
        wait_until(lambda: len(adapter.received) > QUICK_TRIES, "the reply to reach the adapter on its retry", 60)

        web = {"Authorization": f"Bearer {web_token}"}
        posted = client.post("/web/corp/messages", json={"content": "hi", "topic": "t"}, headers=web)
        assert posted.status_code == 200, posted.text
        for params, headers in (({"token": web_token}, {}), ({}, web)):
            with client.stream("GET", "/web/corp/stream", params={"topic": "t", **params}, headers=headers) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                wait_until(lambda lines=lines: next(lines).startswith("data:"), "an event")
        for params, headers in (({"token": WRONG_WEB_TOKEN}, {}), ({}, {"Authorization": f"Bearer {WRONG_WEB_TOKEN}"})):
            assert client.get("/web/corp/stream", params=params, headers=headers).status_code == 401
        assert client.get("/web/corp/topics", headers={"Authorization": f"Bearer {WRONG_WEB_TOKEN}"}).status_code == 401
    return token


# ---------------------------------------------------------------------------------------------------- known secrets
async def test_every_secret_kanmon_holds_issues_or_accepts_is_remembered_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the formatter blanks wherever it appears: configured secrets, and tokens once issued or verified."""
    monkeypatch.setattr(redaction, "SECRETS", SecretValues())

    def remembered(value: str) -> bool:
        return redaction.SECRETS.redact(f"<{value}>") == f"<{REDACTED}>"

    async with running_gateway(tmp_path / "data", [process_group("corp")]) as h:
        run = RunDefaults(instance="t", data_dir=tmp_path)
        Gateway(h.store, {}, GatewayConfig(run=run, adapters=AdapterDeliveryConfig(channel_secret="deliver-SECRET-1")))
        # an agent's secret once a run start has read it (kanmon.container.agent_secrets)
        source = {"API_KEY": SecretSource("env", "AGENT_KEY")}
        assert not remembered("agent-SECRET-0f9e")
        read_secrets(["API_KEY"], source, {"AGENT_KEY": "agent-SECRET-0f9e"})
        app = create_app(h.gateway, WebConfig(channel_secret=CHANNEL_SECRET))
        assert remembered("agent-SECRET-0f9e") and remembered("deliver-SECRET-1") and remembered(CHANNEL_SECRET)

        # tokens issued here, and tokens issued by another process (the CLI, an earlier gated) once they are verified
        issued_here, _ = new_token()
        assert remembered(issued_here)
        elsewhere = "web-token-from-the-cli-3c1d"
        h.store.set_group_web_token("corp", token_hash(elsewhere))
        adapter_elsewhere = "adapter-token-from-before-a-restart"
        h.store.save_channel(
            Channel(
                name="old",
                url="http://127.0.0.1:9",
                token_hash=token_hash(adapter_elsewhere),
                jid_prefixes=["old:"],
                capabilities={},
                registered_at=dt.datetime.now(dt.UTC),
            )
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kanmon") as client:
            registration = {"name": "tg", "url": "http://127.0.0.1:9/bot", "jid_prefixes": ["telegram:"]}
            answer = await client.post("/v1/channels/register", json=registration, headers=bearer(CHANNEL_SECRET))
            assert remembered(answer.json()["token"])

            wrong = [WRONG_WEB_TOKEN, WRONG_ADAPTER_TOKEN, WRONG_SECRET]
            assert not remembered(elsewhere) and not remembered(adapter_elsewhere)
            assert (await client.get("/web/corp/topics", headers=bearer(WRONG_WEB_TOKEN))).status_code == 401
            assert (
                await client.post("/v1/chats", json={"chat_jid": "old:1"}, headers=bearer(WRONG_ADAPTER_TOKEN))
            ).status_code == 401
            assert (await client.get("/v1/channels", headers=bearer(WRONG_SECRET))).status_code == 401
            assert (await client.get("/web/corp/topics", headers=bearer(elsewhere))).status_code == 200
            assert (
                await client.post("/v1/chats", json={"chat_jid": "old:1"}, headers=bearer(adapter_elsewhere))
            ).status_code == 200
        assert remembered(elsewhere) and remembered(adapter_elsewhere)
        # what a client merely sent is not a secret of kanmon's: remembering it would let anyone blank out log lines
        assert not any(remembered(value) for value in wrong)
