"""The message loop end to end (SPEC §5, §6, §11): what reaches an agent, what the gateway keeps for itself.

Guards against the anchors' loop bugs: the gateway's own replies fed back to the agent as new messages (self-reply
loops), a chat that gets a route replaying its whole unrouted history, a delegate's answer landing in its own
``local:`` inbox and waking it again, a crash between reading and committing a batch that answers commands twice,
and arizuko's §4.7 bug of running the layers only on the last message of a batch (``[hello, /ping]`` left hello
waiting; ``[/new, text]`` never reset the session). What each run received is read back from the echo agent's
``ECHO_RECORD`` file in the group folder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kanmon.store import Dispatch, Message, NewMessage
from tests.gateway_harness import RECORD, Harness, gateway_answers, inputs, process_group, prompt_texts, running_gateway

# Long enough that the loop only reads when woken: rows put straight into the store land in one batch.
SLOW_POLL = 5.0
# How long to watch for something that must NOT happen: a few of the harness's 0.5 s poll intervals.
QUIET = 1.5


# ---------------------------------------------------------------------------------------------------- helpers
def recorded(**env: Any) -> dict[str, Any]:
    return {"ECHO_RECORD": RECORD, **env}


class DispatchSpy:
    """Stands in for ``Store.record_dispatch``: notes each batch's seqs, and can fail the first call."""

    def __init__(self, real: Any, *, fail_first: bool = False) -> None:
        self._real = real
        self._fail = fail_first
        self.calls: list[list[int]] = []

    def __call__(self, dispatches: Sequence[Dispatch], last_seq: int, **rest: Any) -> list[Message]:
        self.calls.append([dispatch.seq for dispatch in dispatches])
        if self._fail:
            self._fail = False
            raise RuntimeError("injected fault: the loop dies before committing the batch")
        stored: list[Message] = self._real(dispatches, last_seq, **rest)
        return stored


async def put_batch(h: Harness, chat_jid: str, texts: Sequence[str]) -> list[int]:
    """Store ``texts`` without waking the loop, then wake it once, so it reads them as one batch; their seqs."""
    await h.wait_for(lambda: h.gateway.loop.ticks > 0, "the loop's first tick")
    seqs = []
    for text in texts:
        result = h.store.put_message(NewMessage(chat_jid=chat_jid, content=text, sender="user:1", origin="test"))
        seqs.append(result.message.seq)
    h.gateway.wake()
    return seqs


# ---------------------------------------------------------------------------------------------------- 1. own rows
async def test_the_gateways_own_rows_never_reach_the_agent(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded())]) as h:
        await h.send("web:corp", "/ping")
        await h.wait_for(lambda: len(gateway_answers(h, "web:corp")) == 1, "the /ping answer")
        await h.send("web:corp", "hello")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello"], "the echo reply")
        await h.settled()
        await h.send("web:corp", "next")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello", "echo: next"], "the second echo reply")
        await h.settled()

        assert gateway_answers(h, "web:corp")[0].startswith("pong\n")
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["hello"], ["next"]]
        assert "pong" not in documents[1]["prompt"] and "echo:" not in documents[1]["prompt"]
        assert [row.content for row in h.inbound("web:corp")] == ["/ping", "hello", "next"]


# ---------------------------------------------------------------------------------------------------- 2. unrouted
async def test_a_chat_routed_after_thirty_unrouted_messages_starts_from_the_newest(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded())]) as h:
        for n in range(30):
            await h.send("telegram:9", f"unrouted {n}")
        await h.wait_for(lambda: [row.status for row in h.inbound("telegram:9")] == ["skipped"] * 30, "30 skipped rows")
        await asyncio.sleep(QUIET)
        assert h.store.recent_runs() == []
        assert h.outbound() == []

        h.store.add_route(seq=0, match="chat_jid=telegram:9", target="corp")
        await h.send("telegram:9", "now routed")
        await h.wait_for(lambda: h.replies("telegram:9") == ["echo: now routed"], "the one reply")
        await h.settled()
        await asyncio.sleep(QUIET)

        assert h.replies("telegram:9") == ["echo: now routed"]
        assert [prompt_texts(d) for d in inputs(h, "corp")] == [["now routed"]]
        assert [run.status for run in h.store.recent_runs()] == ["ok"]
        assert [row.status for row in h.inbound("telegram:9")] == ["skipped"] * 30 + ["done"]
        assert h.store.agent_cursor("telegram:9") == h.sent[-1].seq


# ---------------------------------------------------------------------------------------------------- 3. delegation
async def test_a_delegated_message_is_answered_in_the_origin_chat_and_never_loops(tmp_path: Path) -> None:
    groups = [process_group("corp", env=recorded()), process_group("corp/child", env=recorded())]
    async with running_gateway(tmp_path / "data", groups) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:5", target="corp")
        await h.send("telegram:5", "@child do it")
        await h.wait_for(lambda: h.replies("telegram:5") == ["echo: do it"], "the delegate's reply in the origin chat")
        await h.settled()
        seen_rows = len(h.inbound())
        await asyncio.sleep(QUIET)  # a loop would show up as more runs or more rows by now

        child_inputs = inputs(h, "corp/child")
        assert [(prompt_texts(d), d["chatJid"]) for d in child_inputs] == [(["do it"], "telegram:5")]
        assert inputs(h, "corp") == []  # corp ran no agent for the message it delegated
        assert h.replies("telegram:5") == ["echo: do it"]
        assert h.outbound("local:corp/child") == []
        delegated = h.inbound("local:corp/child")
        assert [(row.content, row.forwarded_from, row.status) for row in delegated] == [("do it", "telegram:5", "done")]
        assert [row.status for row in h.inbound("telegram:5")] == ["done"]
        assert [(run.group_folder, run.status) for run in h.store.recent_runs()] == [("corp/child", "ok")]
        assert len(h.inbound()) == seen_rows == 2


# ---------------------------------------------------------------------------------------------------- 4. crash
async def test_a_loop_crash_before_the_commit_rereads_the_batch_without_answering_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kanmon.gateway.loop")
    async with running_gateway(
        tmp_path / "data", [process_group("corp", env=recorded())], poll_interval=SLOW_POLL
    ) as h:
        spy = DispatchSpy(h.store.record_dispatch, fail_first=True)
        monkeypatch.setattr(h.store, "record_dispatch", spy)
        seqs = await put_batch(h, "web:corp", ["/ping", "hello", "/chatid"])

        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello"], "the echo reply after recovery")
        await h.settled()
        await h.wait_for(lambda: h.store.poll_cursor() == h.store.max_seq(), "the poll cursor at the last row")

        assert spy.calls[0] == seqs  # the failed commit covered the whole batch
        assert spy.calls[1][:3] == seqs  # ...and the next tick read it all again
        answers = gateway_answers(h, "web:corp")
        assert len(answers) == 2 and answers[0].startswith("pong\n") and answers[1] == "web:corp"
        assert h.replies("web:corp") == ["echo: hello"]
        assert [prompt_texts(d) for d in inputs(h, "corp")] == [["hello"]]
        assert [run.status for run in h.store.recent_runs()] == ["ok"]
        assert [(row.seq, row.status) for row in h.inbound("web:corp")] == [(seq, "done") for seq in seqs]
        assert any("loop tick failed" in record.getMessage() for record in caplog.records)

        ticks = h.gateway.loop.ticks
        await h.send("web:corp", "still there?")
        await h.wait_for(lambda: h.replies("web:corp")[-1:] == ["echo: still there?"], "a reply after the crash")
        assert h.gateway.loop.ticks > ticks


# ---------------------------------------------------------------------------------------------------- 5. whole batch
async def test_every_message_of_a_batch_goes_through_the_layers_not_only_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(
        tmp_path / "data", [process_group("corp", env=recorded())], poll_interval=SLOW_POLL
    ) as h:
        spy = DispatchSpy(h.store.record_dispatch)
        monkeypatch.setattr(h.store, "record_dispatch", spy)
        seqs = await put_batch(h, "web:corp", ["hello", "/ping"])
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello"], "the echo reply")
        await h.wait_for(lambda: len(gateway_answers(h, "web:corp")) == 1, "the /ping answer")
        await h.settled()

        assert seqs in spy.calls  # both rows were decided in one batch
        assert gateway_answers(h, "web:corp")[0].startswith("pong\n")
        assert [prompt_texts(d) for d in inputs(h, "corp")] == [["hello"]]
        session = h.store.get_session("corp")
        assert session is not None

        seqs = await put_batch(h, "web:corp", ["/new", "fresh start"])
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello", "echo: fresh start"], "the fresh reply")
        await h.settled()

        assert seqs in spy.calls
        assert gateway_answers(h, "web:corp")[1:] == ["Session cleared."]
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["hello"], ["fresh start"]]
        assert "sessionId" not in documents[1]
        fresh = h.store.get_session("corp")
        assert fresh is not None and fresh.session_id != session.session_id


# ---------------------------------------------------------------------------------------------------- 6. builtins
async def test_builtin_route_targets_answer_or_drop_in_the_gateway_without_a_run(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded())]) as h:
        # Builtin routes never own a chat (a folder route must); the builtin route comes first, so it takes the message.
        h.store.add_route(seq=0, match="chat_jid=telegram:7", target="builtin:ping")
        h.store.add_route(seq=0, match="chat_jid=telegram:8", target="builtin:drop")
        h.store.add_route(seq=1, match="chat_jid=telegram:*", target="corp")

        await h.send("telegram:7", "are you there")
        await h.send("telegram:8", "into the void")
        await h.wait_for(lambda: gateway_answers(h, "telegram:7") == ["pong"], "the builtin pong")
        await h.wait_for(lambda: [row.status for row in h.inbound("telegram:8")] == ["done"], "the dropped row done")
        await asyncio.sleep(QUIET)

        assert [row.status for row in h.inbound("telegram:7")] == ["done"]
        assert h.replies() == []
        assert h.outbound("telegram:8") == []
        assert [row.content for row in h.outbound()] == ["pong"]
        assert h.store.recent_runs() == []
        assert inputs(h, "corp") == []


async def test_a_reply_wakes_the_loop_for_a_chat_someone_listens_to_and_waits_for_its_tick_otherwise(
    tmp_path: Path,
) -> None:
    """A run's reply reaches a live page (or OpenAI stream) at once: the loop, the feed's only publisher, is woken
    for it. A reply nobody listens to is read at the loop's next tick instead of costing a tick of its own."""
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=60.0) as h:
        await h.send("web:corp", "nobody listens")
        await h.wait_for(lambda: len(h.replies("web:corp")) == 1, "the first reply")
        await asyncio.sleep(QUIET)
        assert h.store.poll_cursor() < h.store.max_seq()  # the reply is not read yet: no tick was spent on it
        async with h.gateway.feed.subscribe("web:corp") as page:
            await h.send("web:corp", "a page listens")
            live = page.messages()
            heard = [await asyncio.wait_for(anext(live), 30) for _ in range(3)]  # well inside the 60 s poll
        assert [row.content for row in heard] == ["echo: nobody listens", "a page listens", "echo: a page listens"]
