"""A flood: 500 messages from 20 rooms at once, each answered exactly once, in its own room.

Synapse's rate limits are off on the test homeserver (scripts/synapse.sh), so this measures kanmon's adapter and
gated, not Synapse's limiter. The adapter's syncs carry many rooms and long timelines at once; nothing may be
dropped (a limited timeline is completed from /messages) and nothing answered twice.
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from tests.matrix_harness import Human, Stack, room_with_bot

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

ROOMS = 20
PER_ROOM = 25


async def test_500_messages_from_20_rooms_are_answered_exactly_once(stack: Stack, alice: Human) -> None:
    rooms = [await room_with_bot(alice, stack, name=f"flood {i}") for i in range(ROOMS)]
    bot = stack.bot.user_id
    started = time.monotonic()

    async def flood(index: int, room: str) -> None:
        for n in range(PER_ROOM):
            await alice.send(room, f"room {index} message {n}")

    await asyncio.gather(*(flood(i, room) for i, room in enumerate(rooms)))
    sent = time.monotonic() - started

    def answered() -> int:
        return sum(len(alice.from_user(room, bot)) for room in rooms)

    await alice.wait(lambda: answered() >= ROOMS * PER_ROOM, "500 answers", timeout=600)
    took = time.monotonic() - started
    await asyncio.sleep(3)
    await alice.sync()
    for index, room in enumerate(rooms):
        got = collections.Counter(str(e["content"]["body"]) for e in alice.from_user(room, bot))
        assert got == collections.Counter(f"echo: room {index} message {n}" for n in range(PER_ROOM)), room
    assert len(stack.messages("in")) == ROOMS * PER_ROOM
    print(f"\n500 messages from 20 rooms: sent in {sent:.1f}s, all answered after {took:.1f}s")
