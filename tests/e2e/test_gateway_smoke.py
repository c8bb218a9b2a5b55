"""The smallest end-to-end story: one message in, the echo agent's answer out, on the process runtime."""

from __future__ import annotations

from pathlib import Path

from tests.gateway_harness import process_group, running_gateway


async def test_a_web_message_is_answered_by_the_echo_agent(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("demo")]) as h:
        await h.send("web:demo", "hello")
        await h.wait_for(lambda: h.replies("web:demo") == ["echo: hello"], "the echo reply")
        await h.settled()
        assert h.store.agent_cursor("web:demo") == h.sent[-1].seq


async def test_the_web_feed_shows_the_user_the_command_answer_and_the_reply_in_seq_order(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("demo")]) as h:
        async with h.gateway.feed.subscribe("web:demo", topic="t") as subscription:
            await h.send("web:demo", "/chatid", topic="t")
            await h.send("web:demo", "hello", topic="t")
            seen: list[tuple[int, str, str]] = []
            async for message in subscription.messages():
                seen.append((message.seq, message.direction, message.content))
                if message.content == "echo: hello":
                    break
        assert seen == sorted(seen)  # published in seq order, so ids (seq) never go backwards
        assert {(d, c) for _, d, c in seen} == {
            ("in", "/chatid"),
            ("in", "hello"),
            ("out", "web:demo"),
            ("out", "echo: hello"),
        }
        assert len(seen) == 4
        await h.wait_for(lambda: h.store.counts()["deliveries_pending"] == 0, "the web rows to be marked delivered")
