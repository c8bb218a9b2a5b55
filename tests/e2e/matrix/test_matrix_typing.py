"""The Matrix adapter takes typing: while a slow agent works, the room shows the bot typing; the reply ends it.

Real Synapse, real gated and adapter processes (tests/matrix_harness.py). The adapter registers with
``capabilities: {"typing": true}``; gated POSTs its ``/typing`` every 0.5 s here (``KANMON_DELIVERY_TYPING_INTERVAL``)
and the adapter sets the bot's typing notice in the room (``PUT …/typing/{user}``). A second client of alice's
watches the room's ephemeral ``m.typing`` events, as a chat app does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nio import AsyncClient, SyncResponse, TypingNoticeEvent

from tests.matrix_harness import CHANNEL_SECRET, Homeserver, Human, Stack, room_with_bot

pytestmark = [pytest.mark.synapse, pytest.mark.slow]


@pytest.fixture
def slow_stack(tmp_path: Path, synapse: Homeserver, alice: Human) -> Iterator[Stack]:
    """The stack with an echo agent that takes four seconds to answer and two more to exit."""
    stack = Stack(tmp_path / "data", synapse, synapse.register("bot"), inviters=[alice.user_id])
    stack.env = {"KANMON_DELIVERY_TYPING_INTERVAL": "0.5"}
    stack.configure(group_env={"ECHO_DELAY": 4.0, "ECHO_HANG": 2.0})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def typing_notices(watcher: AsyncClient, room: str, seen: list[tuple[float, list[str]]]) -> None:
    """Record ``(when, who is typing)`` for each ``m.typing`` of ``room``, until cancelled."""
    since = None
    while True:
        answer = await watcher.sync(timeout=1000, since=since, full_state=since is None)
        assert isinstance(answer, SyncResponse), answer
        since = answer.next_batch
        joined = answer.rooms.join.get(room)
        for event in joined.ephemeral if joined is not None else []:
            if isinstance(event, TypingNoticeEvent):
                seen.append((time.monotonic(), list(event.users)))


async def test_the_room_shows_the_bot_typing_while_the_agent_works(slow_stack: Stack, alice: Human) -> None:
    room = await room_with_bot(alice, slow_stack)
    bot = slow_stack.bot.user_id
    watcher = AsyncClient(alice.client.homeserver, alice.user_id)
    watcher.restore_login(alice.user_id, "", alice.client.access_token)
    seen: list[tuple[float, list[str]]] = []
    watching = asyncio.create_task(typing_notices(watcher, room, seen))
    try:
        await alice.send(room, "take your time")
        await alice.wait(lambda: any(bot in users for _, users in seen), "the bot typing")
        await alice.wait(lambda: bool(alice.from_user(room, bot)), "the answer")
        await alice.wait(lambda: bot not in seen[-1][1], "the typing notice to end")
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await watcher.close()
    [answer] = alice.from_user(room, bot)
    assert answer["content"]["body"] == "echo: take your time"
    typing_from = next(at for at, users in seen if bot in users)
    typing_until = next(at for at, users in seen if at > typing_from and bot not in users)
    assert typing_until - typing_from >= 2.0  # kept up through the agent's four seconds, not one notice
    # the adapter's /typing wants the channel secret, like /send
    async with httpx.AsyncClient(base_url=slow_stack.adapter_url) as http:
        body = {"chat_jid": f"matrix:{room}", "on": True}
        assert (await http.post("/typing", json=body)).status_code == 401
        answered = await http.post("/typing", json=body, headers={"Authorization": f"Bearer {CHANNEL_SECRET}"})
        assert answered.status_code == 200 and answered.json() == {"ok": True}
        secret = {"Authorization": f"Bearer {CHANNEL_SECRET}"}
        assert (await http.post("/typing", json={"chat_jid": "matrix:lobby"}, headers=secret)).status_code == 400
