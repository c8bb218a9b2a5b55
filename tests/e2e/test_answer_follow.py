"""The OpenAI API's answer ends when the run ends, not at the next status poll.

A run's outcome changes its messages' status and stores no row, so before the feed carried word of run ends the
answer to a message whose last reply was stored before the run ended waited for the 0.5 s poll (a newcomer saw the
stream's last chunk and ``[DONE]`` ~500 ms after the content, in 3 of 4 tries). Here the poll floor is an hour: an
answer that waited for it would time the test out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kanmon.web import openai_replies
from kanmon.web.openai_replies import Answer, follow_answer
from tests.gateway_harness import process_group, running_gateway


async def test_the_answer_ends_with_the_run_that_stored_its_reply_earlier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_replies, "POLL_SECONDS", 3600.0)
    group = process_group("corp", {"ECHO_HANG": 1.0})  # the reply is stored, then the run goes on for a second
    async with running_gateway(tmp_path / "data", [group]) as h:
        async with h.gateway.feed.subscribe("web:corp") as subscription:
            message = await h.send("web:corp", "hello")
            answers: list[Answer] = []

            async def follow() -> None:
                async for answer in follow_answer(h.gateway, subscription, message):
                    answers.append(answer)

            await asyncio.wait_for(follow(), 30)
        assert [a.reply.content for a in answers if a.reply is not None] == ["echo: hello"]
        assert answers[-1].settled == "done"
