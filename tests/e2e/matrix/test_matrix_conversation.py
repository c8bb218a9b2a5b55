"""A person on Matrix talks to a kanmon agent: a real Synapse, a real gated, the adapter, and a nio client.

The message reaches the echo agent through gated, and the answer comes back into the room as a notice that replies
to it, or into the thread it came from (arizuko's adapters answered threads in the main channel, or failed).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.gated_process import GATED
from tests.matrix_harness import CHANNEL_SECRET, Human, Stack, room_with_bot
from tests.ports import free_port

pytestmark = [pytest.mark.synapse, pytest.mark.slow]


def relation(event: dict[str, object]) -> dict[str, object]:
    content = event.get("content")
    assert isinstance(content, dict)
    found = content.get("m.relates_to") or {}
    assert isinstance(found, dict)
    return found


async def test_a_room_message_is_answered_in_the_room_and_a_thread_message_in_its_thread(
    stack: Stack, alice: Human
) -> None:
    room = await room_with_bot(alice, stack)
    asked = await alice.send(room, "hello kanmon")
    bot = stack.bot.user_id
    await alice.wait(lambda: len(alice.from_user(room, bot)) >= 1, "the agent's answer")
    [answer] = alice.from_user(room, bot)
    assert answer["content"]["body"] == "echo: hello kanmon"
    assert answer["content"]["msgtype"] == "m.notice"  # bot output: other bots do not answer it
    assert relation(answer) == {"m.in_reply_to": {"event_id": asked}}

    in_thread = await alice.send(
        room,
        {"msgtype": "m.text", "body": "and in a thread",
         "m.relates_to": {"rel_type": "m.thread", "event_id": asked, "is_falling_back": True,
                          "m.in_reply_to": {"event_id": asked}}},
    )  # fmt: skip
    await alice.wait(lambda: len(alice.from_user(room, bot)) >= 2, "the answer in the thread")
    threaded = alice.from_user(room, bot)[1]
    assert threaded["content"]["body"] == "echo: and in a thread"
    assert relation(threaded)["rel_type"] == "m.thread"
    assert relation(threaded)["event_id"] == asked  # the thread it came from
    assert relation(threaded)["m.in_reply_to"] == {"event_id": in_thread}

    stored = {row.id: row for row in stack.messages("in")}
    assert stored[asked].chat_jid == f"matrix:{room}" and stored[asked].topic == ""
    assert stored[in_thread].topic == asked  # a thread is a topic: its own agent session
    assert stored[asked].sender == alice.user_id
    assert not [row for row in stack.messages("in") if row.sender == bot]  # its own answers are never ingested


async def test_no_log_line_shows_a_password_token_or_secret(stack: Stack, alice: Human) -> None:
    room = await room_with_bot(alice, stack)
    await alice.send(room, f"my password is {stack.bot.password}")  # even said in a chat, gated's logs blank it
    await alice.wait(lambda: bool(alice.from_user(room, stack.bot.user_id)), "the answer")
    stack.stop()
    with sqlite3.connect(stack.data_dir / "adapters" / "matrix" / "state.db") as state:
        [(token,)] = state.execute("select value from kv where key = 'access_token'").fetchall()
    assert stack.gated is not None
    logs = stack.adapter_logged() + stack.gated.logged()
    assert "logged in to" in logs
    for secret in (stack.bot.password, token, CHANNEL_SECRET):
        assert secret not in logs


def test_an_adapter_gated_refuses_says_why_in_one_line_and_exits(stack: Stack) -> None:
    env = {
        **os.environ,
        "KANMON_HTTP_CHANNEL_SECRET": "not the secret",
        "KANMON_MATRIX_LISTEN": f"127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [*GATED, "--data-dir", str(stack.data_dir), "adapter", "matrix"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.decode().splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "401" in errors[0] and "Traceback" not in done.stderr.decode()


def test_a_refused_login_says_why_in_one_line_and_exits(stack: Stack, tmp_path: Path) -> None:
    other = tmp_path / "other"  # no saved login here: the adapter must log in with the password
    other.mkdir()
    shutil.copy(stack.data_dir / "kanmon.yaml", other / "kanmon.yaml")
    env = {**os.environ, "KANMON_MATRIX_PASSWORD": "wrong-password", "KANMON_MATRIX_LISTEN": f"127.0.0.1:{free_port()}"}
    done = subprocess.run(
        [*GATED, "--data-dir", str(other), "adapter", "matrix"], env=env, capture_output=True, timeout=60
    )
    stderr = done.stderr.decode()
    assert done.returncode == 1
    [error] = [line for line in stderr.splitlines() if line.startswith("Error")]
    assert "refused the password login" in error and "wrong-password" not in stderr and "Traceback" not in stderr
