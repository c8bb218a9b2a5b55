"""The OpenAI API's answer ends when the run ends, not at the next status poll.

A run's outcome changes its messages' status and stores no row, so before the feed carried word of run ends the
answer to a message whose last reply was stored before the run ended waited for the 0.5 s poll (a newcomer saw the
stream's last chunk and ``[DONE]`` ~500 ms after the content, in 3 of 4 tries). Here the poll floor is an hour: an
answer that waited for it would time the test out.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from kanmon.gated.terminal import TerminalChat
from kanmon.gateway.hooks import Hooks, Retarget, hookimpl
from kanmon.store import Message
from kanmon.web import openai_replies
from kanmon.web.openai_replies import Answer, follow_answer
from tests.gateway_harness import Harness, process_group, running_gateway


async def answer_to(h: Harness, text: str, topic: str = "") -> list[Answer]:
    """What :func:`follow_answer` gives for ``text`` sent to corp's web chat, to its end (30 s at most)."""
    async with h.gateway.feed.subscribe("web:corp") as subscription:
        message = await h.send("web:corp", text, topic=topic)
        return [answer async for answer in _bounded(follow_answer(h.gateway, subscription, message))]


async def _bounded(answers: AsyncIterator[Answer]) -> AsyncIterator[Answer]:
    async with asyncio.timeout(30):
        async for answer in answers:
            yield answer


async def test_the_answer_ends_with_the_run_that_stored_its_reply_earlier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_replies, "POLL_SECONDS", 3600.0)
    group = process_group("corp", {"ECHO_HANG": 1.0})  # the reply is stored, then the run goes on for a second
    async with running_gateway(tmp_path / "data", [group]) as h:
        answers = await answer_to(h, "hello")
        assert [a.reply.content for a in answers if a.reply is not None] == ["echo: hello"]
        assert answers[-1].settled == "done"


# ---------------------------------------------------------------------------------------------------- delegations
# `@eng …` in corp's chat is delegated: the row is settled in the tick and a copy waits in eng's inbox (`local:`),
# whose run answers in corp's chat. A follower that stopped when the row left `new` missed the answer (a newcomer:
# `gated chat corp` exited silently in 4 of 10 tries, the OpenAI API answered "" at once).
async def test_the_answer_to_a_delegated_message_is_the_delegates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_replies, "POLL_SECONDS", 3600.0)  # the delegate's run end must wake the follower
    groups = [process_group("corp"), process_group("corp/eng", {"ECHO_HANG": 1.0})]  # its reply, then a second more
    async with running_gateway(tmp_path / "data", groups) as h:
        answers = await answer_to(h, "@eng once more via eng", topic="t")
        assert [a.reply.content for a in answers if a.reply is not None] == ["echo: once more via eng"]
        assert answers[-1].settled == "done"


async def test_a_delegate_delegating_further_is_followed_to_the_end(tmp_path: Path) -> None:
    def on_to_db(message: Message, folder: str) -> Retarget | None:
        """corp/eng hands what reaches its inbox on to its child db: a second hop, answered in corp's chat."""
        return Retarget("corp/eng/db") if message.chat_jid == "local:corp/eng" else None

    hooks = Hooks([("on_to_db", SimpleNamespace(message_routed=hookimpl(on_to_db)))])
    groups = [process_group("corp"), process_group("corp/eng"), process_group("corp/eng/db", {"ECHO_DELAY": 0.5})]
    async with running_gateway(tmp_path / "data", groups, hooks=hooks) as h:
        answers = await answer_to(h, "@eng two hops")
        assert [a.reply.content for a in answers if a.reply is not None] == ["echo: two hops"]
        assert answers[-1].settled == "done"
        assert [row.chat_jid for row in h.inbound()] == ["web:corp", "local:corp/eng", "local:corp/eng/db"]


async def test_the_terminal_chat_waits_for_a_delegates_answer(tmp_path: Path) -> None:
    groups = [process_group("corp"), process_group("corp/eng", {"ECHO_DELAY": 0.5})]
    async with running_gateway(tmp_path / "data", groups) as h:
        screen = io.StringIO()
        chat = TerminalChat(h.gateway.db, "corp", put=h.gateway.put_message, output=screen, reply_timeout=30.0)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        for line in ("@eng are you there", None):
            lines.put_nowait(line)
        assert await chat.run(lines) == 0
        assert "corp> echo: are you there" in screen.getvalue().splitlines()
