"""A run that answered is never run again because kanmon could not write down how it ended (an outside review).

Its replies are already the chat's: a retry would answer the chat once more per attempt, then dead-letter the batch
with an apology. Before, an agent's ``newSessionId`` with a lone surrogate (valid JSON) in an output that also
reported usage made the run's last transaction fail with an error that is not a StoreError, the bare end that stands
in for it kept the usage and failed the same way, and the run was retried: three answers and an apology.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from kanmon.container import InProcessRuntime
from kanmon.container.inprocess import AgentCall
from kanmon.store import Group, RunEnd, RunEnded
from tests.gateway_harness import Harness, running_gateway

ODD_SESSION = (
    b"---ARIZUKO_OUTPUT_START---\n"
    b'{"status":"ok","result":"the answer","newSessionId":"s\\ud800","usage":{"input_tokens":10,"output_tokens":5}}\n'
    b"---ARIZUKO_OUTPUT_END---\n"
)


async def odd_session_agent(call: AgentCall) -> int:
    call.write(ODD_SESSION)
    await asyncio.sleep(0.2)  # the reply is stored while the run goes on (the recorder's first window)
    return 0


async def answering_agent(call: AgentCall) -> int:
    call.emit({"status": "ok", "result": "the answer", "newSessionId": "s1"})
    return 0


def corp() -> list[Group]:
    return [Group(folder="corp", container_config={"runtime": "inproc", "command": ["unused"]})]


async def answered_once(h: Harness) -> None:
    await h.send("web:corp", "hello")
    await h.settled()
    assert h.replies("web:corp") == ["the answer"]
    assert [m.content for m in h.outbound("web:corp")] == ["the answer"]  # no apology either
    assert [m.status for m in h.inbound("web:corp")] == ["done"]
    assert len(h.store.recent_runs()) == 1


async def test_an_agents_odd_session_id_in_an_output_with_usage_answers_the_chat_once(tmp_path: Path) -> None:
    runtimes = {"inproc": InProcessRuntime(odd_session_agent)}
    async with running_gateway(tmp_path / "data", corp(), runtimes=runtimes) as h:
        await answered_once(h)
        [run] = h.store.recent_runs()
        assert run.status == "ok"
        session = h.store.get_session("corp")
        assert session is not None and session.session_id == "s\ufffd"


async def test_a_bookkeeping_fault_of_any_kind_records_the_bare_end_and_never_reruns(tmp_path: Path) -> None:
    runtimes = {"inproc": InProcessRuntime(answering_agent)}
    async with running_gateway(tmp_path / "data", corp(), runtimes=runtimes) as h:
        finish_runs = h.store.finish_runs

        faults = [ValueError("a bookkeeping bug")]

        def buggy_once(ends: Sequence[RunEnd], *, now: object) -> list[RunEnded]:
            """The run's end meets a fault in kanmon's own bookkeeping (not the store's), once."""
            if faults and any(end.run_id is not None for end in ends):
                raise faults.pop()
            return finish_runs(ends, now=now)  # type: ignore[arg-type]

        h.store.finish_runs = buggy_once  # type: ignore[method-assign]
        await answered_once(h)
        [run] = h.store.recent_runs()
        assert run.status == "error" and run.error is not None and "could not record" in run.error
