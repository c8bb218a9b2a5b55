"""Telegram's "typing…" while an agent works, driven by gated: its ``/typing`` reaches the Bot API as
``sendChatAction`` for the whole of a slow run, in the message's forum topic, and stops with the reply.

The adapter registers with ``capabilities: {"typing": true}``; gated POSTs ``/typing`` every 0.5 s here. The
adapter's own indicator from the moment a message comes in is cut to one action (``telegram.typing_limit`` 1 s),
so every further ``sendChatAction`` the fake sees is gated's doing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.telegram_world import telegram_world
from tests.telegram_fake import message, running_fake, user

pytestmark = pytest.mark.slow
ANN = user(42, "Ann")


async def test_gated_keeps_telegram_typing_through_a_slow_run_in_its_topic_until_the_reply(tmp_path: Path) -> None:
    with running_fake() as fake:
        forum = fake.chat(-1002, "supergroup", title="Forum", forum=True)
        async with telegram_world(
            tmp_path, fake, typing_limit=1.0, typing_interval=0.5, agent_env={"ECHO_DELAY": 3.0, "ECHO_HANG": 2.0}
        ) as w:
            [channel] = w.h.store.list_channels()
            fake.add_update(message=message(forum, 11, ANN, "think hard", message_thread_id=10, is_topic_message=True))
            [reply] = await w.until(lambda: fake.sent_messages(), "the reply")
            replied_at = fake.calls_of("sendMessage")[-1].at
            await w.until(lambda: w.h.store.runs_in_flight() == [], "the run's end", timeout=30)
            actions = fake.calls_of("sendChatAction")

    assert channel.capabilities["typing"] is True
    assert reply["text"] == "echo: think hard" and reply["params"]["message_thread_id"] == 10
    assert all(call.params == {"chat_id": -1002, "action": "typing", "message_thread_id": 10} for call in actions)
    during = [call for call in actions if call.at < replied_at]
    assert len(during) >= 4  # three seconds of work: gated's pings, not only the adapter's one at the message
    assert during[-1].at - during[0].at >= 2.0
    assert not [call for call in actions if call.at > replied_at]  # nothing after the reply, though the run went on
