"""The impulse gate inside the running loop (SPEC §7): low-value events wait for a real message or for max_hold.

arizuko flushed held chats only on ticks that brought new rows, and measured the hold from the latest event, so a
chat of typing notifications could wait forever. Here the hold is checked on every tick and counted from the first,
and a message that fired its chat is not held back by a low-value event that arrives before its run takes it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kanmon.container import InProcessRuntime
from kanmon.container.inprocess import AgentCall
from kanmon.router import ImpulseConfig
from kanmon.store import Group
from tests.e2e.test_stop_while_starting import SlowToStart
from tests.gateway_harness import process_group, running_gateway


async def test_typing_events_wake_no_agent_until_a_message_comes_and_then_run_together(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.1) as h:
        await h.send("web:corp", "is typing", verb="typing")
        await asyncio.sleep(1.0)  # ten ticks: nothing may run for a zero-weight event
        assert h.store.recent_runs() == []
        assert h.gateway.gate.held() == 1
        await h.send("web:corp", "the question")
        await h.settled()
        [run] = h.store.recent_runs()
        assert run.message_count == 2  # the held event travels with the message that fired the chat
        assert h.replies("web:corp") == ["echo: is typing", "echo: the question"]


async def test_a_held_chat_is_flushed_after_max_hold_even_when_nothing_else_arrives(tmp_path: Path) -> None:
    impulse = ImpulseConfig(max_hold_ms=600)
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=5.0, impulse=impulse) as h:
        await h.send("web:corp", "reacted", verb="react")
        await h.wait_for(lambda: len(h.store.recent_runs()) == 1, "the held chat to be flushed", timeout=10)
        # flushed by the gate's deadline, not by the next 5 s poll or by a new message
        assert h.gateway.loop.ticks < 5
        await h.settled()
        assert h.replies("web:corp") == ["echo: reacted"]


async def answers(call: AgentCall) -> int:
    call.emit({"status": "ok", "result": "answer"})
    return 0


async def test_a_message_that_fired_is_not_held_back_by_an_edit_that_comes_while_its_run_starts(
    tmp_path: Path,
) -> None:
    """Before, the edit began a new hold of the chat, and the run (whose container was still starting) took none of
    the chat's rows: the question waited for the edit's whole max_hold (an outside review)."""
    runtimes = {"slow": SlowToStart(InProcessRuntime(answers), 0.5)}
    group = Group(folder="corp", container_config={"runtime": "slow", "command": ["unused"]})
    impulse = ImpulseConfig(max_hold_ms=10_000)
    async with running_gateway(tmp_path / "data", [group], runtimes=runtimes, impulse=impulse) as h:
        began = time.monotonic()
        await h.send("web:corp", "what is the time?")  # weight 100: fires at once
        await asyncio.sleep(0.1)
        await h.send("web:corp", "what is the time ?", verb="edit")  # weight 0, while the container starts
        await h.wait_for(lambda: h.replies("web:corp") != [], "the answer", timeout=30)
        assert time.monotonic() - began < 6.0  # well before the edit's hold of 10 s ran out
        [run] = h.store.recent_runs()
        assert run.message_count == 2  # the edit went with the question
        assert h.gateway.gate.held() == 0  # the run took what the gate held: no hold left to run out
