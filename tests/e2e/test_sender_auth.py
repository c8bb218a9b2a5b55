"""Sender authorisation end to end (issue 16 item 1): a stranger in a public group never reaches the agent.

A real gateway with a process-runtime echo group ``main`` owning every ``telegram:`` chat, ``auth.mode: allowlist``,
and messages arriving the way an adapter sends them (``POST /v1/chats`` with ``is_group``, ``POST /v1/messages``).
What must hold: in a public group an allowed sender is answered by the agent and a stranger is not (its rows are
skipped and counted, nothing is said to the group); a stranger in a direct chat gets one pairing code however often
it writes, and once an operator approves the code from the terminal (while gated runs) the sender reaches the agent.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.gateway.auth import AuthConfig
from kanmon.web import WebConfig, create_app
from tests.gateway_harness import RECORD, Harness, gateway_answers, inputs, process_group, prompt_texts, running_gateway

SECRET = "s3cret-for-adapters"
TG = {"name": "tg", "url": "http://127.0.0.1:9/bot", "jid_prefixes": ["telegram:"], "capabilities": {"send_text": True}}
PUBLIC = "telegram:-100"
DM = "telegram:666"
FRIEND = "telegram:42"
STRANGER = "telegram:666"
CODE = re.compile(r"pairing code is ([A-Z2-9]{8})")


@contextlib.asynccontextmanager
async def adapter(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A registered adapter ``tg``: a client of the gateway's HTTP app carrying its token."""
    app = create_app(h.gateway, WebConfig(channel_secret=SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kanmon") as client:
        answer = await client.post("/v1/channels/register", json=TG, headers={"Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 200, answer.text
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        for jid, is_group in ((PUBLIC, True), (DM, False)):
            described = await client.post("/v1/chats", json={"chat_jid": jid, "name": jid, "is_group": is_group})
            assert described.status_code == 200, described.text
        yield client


async def say(client: httpx.AsyncClient, chat: str, sender: str, text: str) -> int:
    body = {"chat_jid": chat, "sender": sender, "sender_name": sender, "content": text}
    answer = await client.post("/v1/messages", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["seq"])


def gated(data_dir: Path, *args: str) -> Result:
    env = {name: None for name in os.environ if name.startswith("KANMON_")}
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], env=env, catch_exceptions=False)


def seen_by_agent(h: Harness) -> list[str]:
    return [text for document in inputs(h, "main") for text in prompt_texts(document)]


async def test_a_stranger_in_a_public_group_never_reaches_the_agent(tmp_path: Path) -> None:
    groups = [process_group("main", env={"ECHO_RECORD": RECORD})]
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.1, auth=AuthConfig(mode="allowlist")) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:*", target="main")
        assert gated(h.data_dir, "allow", "add", FRIEND, "--platform", "telegram").exit_code == 0
        async with adapter(h) as client:
            strangers = [await say(client, PUBLIC, STRANGER, f"psst {i}") for i in range(3)]
            await say(client, PUBLIC, FRIEND, "hello agent")
            await h.wait_for(lambda: any("hello agent" in r for r in h.replies(PUBLIC)), "the agent's answer")
            await h.settled()
            rows = {row.seq: row for row in h.inbound(PUBLIC)}
            assert [rows[seq].status for seq in strangers] == ["skipped"] * 3
            assert not any("psst" in text for text in seen_by_agent(h))
            assert gateway_answers(h, PUBLIC) == []  # the group is never told anything
            assert "refused senders: 1 (3 messages)" in gated(h.data_dir, "status").output


async def test_a_dm_stranger_pairs_once_and_then_reaches_the_agent(tmp_path: Path) -> None:
    groups = [process_group("main", env={"ECHO_RECORD": RECORD})]
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.1, auth=AuthConfig(mode="allowlist")) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:*", target="main")
        async with adapter(h) as client:
            for i in range(4):
                await say(client, DM, STRANGER, f"let me in {i}")
            await h.wait_for(lambda: len(h.inbound(DM)) == 4 and h.store.poll_cursor() >= h.inbound(DM)[-1].seq, "4")
            notices = gateway_answers(h, DM)
            assert len(notices) == 1, notices
            found = CODE.search(notices[0])
            assert found
            approved = gated(h.data_dir, "pairing", "approve", found.group(1))
            assert approved.exit_code == 0, approved.output
            await say(client, DM, STRANGER, "thanks")
            await h.wait_for(lambda: any("thanks" in r for r in h.replies(DM)), "the agent's answer after pairing")
            assert not any("let me in" in text for text in seen_by_agent(h))
