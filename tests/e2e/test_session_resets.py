"""Session reset policies and the memory flush turn end to end (issue 16 items 2 and 3), with the echo agent.

Time is the gateway's injected clock, set by the test (no sleeping for a day): the first run happens, gated stops,
the clock moves past the policy's limit (across the spring-forward night of Europe/Berlin for ``daily``), and the
restarted gated decides from the stored timestamps alone. What each run received is read back from the echo agent's
``ECHO_RECORD`` file: the flush turn with the old session id, then a fresh session whose prompt says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from kanmon.container import ContainerError
from kanmon.container.process import ProcessRuntime
from kanmon.store import Group
from tests.clocks import ShiftedClock
from tests.gateway_harness import RECORD, Harness, gateway_answers, inputs, process_group, prompt_texts, running_gateway


def group(**config: Any) -> Group:
    return process_group("corp", env={"ECHO_RECORD": RECORD}, memory_flush_prompt="SAVE NOW", **config)


async def turn(h: Harness, text: str, replies: int) -> None:
    await h.send("web:corp", text)
    await h.wait_for(lambda: len(h.replies("web:corp")) == replies, f"reply {replies}")
    await h.settled()


# spring forward in Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 04:00 CEST is 02:00 UTC
BEFORE_DST = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
BERLIN_DAILY = {"session_reset": "daily", "session_reset_hour": 4, "timezone": "Europe/Berlin"}


@pytest.mark.parametrize(
    ("policy", "jump", "expected"),
    [
        ({"session_reset": "none", "session_idle_expiry": 60}, 48 * 3600, None),
        ({"session_reset": "idle", "session_idle_expiry": 3600}, 50 * 60, None),
        ({"session_reset": "idle", "session_idle_expiry": 3600}, 2 * 3600, "idle for 2h"),
        (BERLIN_DAILY, 20 * 60, None),  # 01:50 UTC, 03:50 CEST
        (BERLIN_DAILY, 40 * 60, "daily reset"),  # 02:10 UTC, 04:10 CEST: past the boundary the DST change moved
        ({**BERLIN_DAILY, "session_reset": "both", "session_idle_expiry": 7200}, 40 * 60, "daily reset"),
        ({"session_reset": "daily", "session_reset_platforms": {"web": {"mode": "none"}}}, 48 * 3600, None),
    ],
)
async def test_a_policy_resets_after_a_restart_from_stored_times_with_a_flush_and_a_note(
    tmp_path: Path, policy: dict[str, Any], jump: float, expected: str | None
) -> None:
    clock = ShiftedClock.starting_at(BEFORE_DST)
    config = {**policy, "memory_flush": True, "session_reset_notice": True}
    async with running_gateway(tmp_path / "data", [group(**config)], clock=clock) as h:
        await turn(h, "one", 1)
        first = h.store.get_session("corp", "")
        assert first is not None
    clock.advance(jump)  # while gated is down
    async with running_gateway(tmp_path / "data", [], clock=clock) as h:
        await turn(h, "two", 2)
        documents = inputs(h, "corp")
        assert h.replies("web:corp") == ["echo: one", "echo: two"]  # the flush turn's reply went nowhere
        if expected is None:
            assert [prompt_texts(d) for d in documents] == [["one"], ["two"]]
            assert documents[1]["sessionId"] == first.session_id and "<system " not in documents[1]["prompt"]
            assert gateway_answers(h, "web:corp") == []
            return
        assert [prompt_texts(d) for d in documents] == [["one"], ["SAVE NOW"], ["two"]]
        assert documents[1]["sessionId"] == first.session_id  # the flush speaks to the old session
        assert "sessionId" not in documents[2]
        note = re.search(r'<system [^>]*event="auto_reset"[^>]*>([^<]*)</system>', documents[2]["prompt"])
        assert note is not None and expected in note.group(1)
        assert [a for a in gateway_answers(h, "web:corp") if a.startswith("Session reset: ")] == [
            a for a in gateway_answers(h, "web:corp")
        ] and len(gateway_answers(h, "web:corp")) == 1
        assert expected in gateway_answers(h, "web:corp")[0]
        assert h.store.get_reset("corp", "") is None  # told and flushed: nothing left
        fresh = h.store.get_session("corp", "")
        assert fresh is not None and fresh.session_id != first.session_id


async def test_new_flushes_the_old_session_and_the_next_prompt_says_it_was_the_users_choice(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [group(memory_flush=True)]) as h:
        await turn(h, "one", 1)
        first = h.store.get_session("corp", "")
        assert first is not None
        await h.send("web:corp", "/new")
        await h.wait_for(lambda: "Session cleared." in gateway_answers(h, "web:corp"), "/new's answer")
        await turn(h, "two", 2)
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["one"], ["SAVE NOW"], ["two"]]
        assert documents[1]["sessionId"] == first.session_id and "sessionId" not in documents[2]
        assert 'event="fresh_reset"' in documents[2]["prompt"] and "auto_reset" not in documents[2]["prompt"]


async def test_the_text_after_new_runs_after_the_flush_in_the_fresh_session(tmp_path: Path) -> None:
    # `/new text` routes its text in the same tick as the reset: the flush turn must still speak first
    async with running_gateway(tmp_path / "data", [group(memory_flush=True)]) as h:
        await turn(h, "one", 1)
        first = h.store.get_session("corp", "")
        assert first is not None
        await turn(h, "/new two", 2)
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["one"], ["SAVE NOW"], ["two"]]
        assert documents[1]["sessionId"] == first.session_id and "sessionId" not in documents[2]
        assert 'event="fresh_reset"' in documents[2]["prompt"]


async def test_a_flush_past_its_timeout_is_stopped_and_the_reset_goes_ahead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kanmon.gateway")
    slow = group(memory_flush=True, memory_flush_timeout=1, session_reset="idle", session_idle_expiry=60)
    clock = ShiftedClock.starting_at(BEFORE_DST)
    async with running_gateway(tmp_path / "data", [slow], clock=clock) as h:
        await turn(h, "one", 1)
        first = h.store.get_session("corp", "")
        assert first is not None

        def slower(config: dict[str, Any]) -> dict[str, Any]:
            return {**config, "env": {**config["env"], "ECHO_DELAY": "3"}}  # every output now waits 3 s

        h.store.update_group_config("corp", slower)
        clock.advance(120)
        await turn(h, "two", 2)
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["one"], ["SAVE NOW"], ["two"]]
        assert documents[1]["sessionId"] == first.session_id and "sessionId" not in documents[2]
        assert h.replies("web:corp") == ["echo: one", "echo: two"]
        assert h.store.get_reset("corp", "") is None
        assert "memory flush folder=corp topic= session=" in caplog.text and "ended=hard_timeout" in caplog.text


class Unremovable:
    """A process runtime whose next run started after :meth:`arm` cannot be removed (its runtime fails the removal,
    as a Docker engine that went away does); every other run is left alone."""

    def __init__(self, runtime: ProcessRuntime) -> None:
        self.runtime, self.armed, self.refused = runtime, False, 0

    def arm(self) -> None:
        self.armed = True

    async def start(self, spec: Any) -> Any:
        handle = await self.runtime.start(spec)
        if self.armed:
            self.armed, closing = False, handle.close

            async def refuse() -> None:
                self.refused += 1
                await closing()  # removed all the same, so that the test leaves nothing behind
                raise ContainerError("Docker engine went away")

            handle.close = refuse  # type: ignore[method-assign]  # this one handle only
        return handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)


async def test_a_flush_whose_container_cannot_be_removed_yet_fails_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Removal comes after the outcome is recorded (SPEC §9); one that fails is logged and retried as a leftover. A
    flush turn is no exception: the run it goes before takes its batch at once, without a failed attempt."""
    caplog.set_level(logging.INFO, logger="kanmon")
    data = tmp_path / "data"
    runtime = Unremovable(ProcessRuntime(data / "runs", data_dir=data))
    clock = ShiftedClock.starting_at(BEFORE_DST)
    policy = group(memory_flush=True, session_reset="idle", session_idle_expiry=60)
    async with running_gateway(data, [policy], clock=clock, runtimes={"process": runtime}) as h:
        await turn(h, "one", 1)
        runtime.arm()
        clock.advance(120)
        await turn(h, "two", 2)
        assert [prompt_texts(d) for d in inputs(h, "corp")] == [["one"], ["SAVE NOW"], ["two"]]
        assert runtime.refused == 1 and "could not remove" in caplog.text
        assert [r.status for r in h.store.recent_runs(50) if r.first_seq is not None] == ["ok", "ok"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def flush_runs(h: Harness) -> list[tuple[str, str | None, int]]:
    """The memory flush turns in ``session_log`` (runs without a batch): status, session, outputs."""
    return [(r.status, r.session_id, r.output_count) for r in h.store.recent_runs(50) if r.first_seq is None]


async def test_a_chat_that_never_speaks_again_is_reset_and_flushed_by_the_expiry_watcher(tmp_path: Path) -> None:
    clock = ShiftedClock.starting_at(BEFORE_DST)
    usage = '{"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01}'
    quiet = process_group(
        "corp", env={"ECHO_RECORD": RECORD, "ECHO_USAGE": usage}, memory_flush_prompt="SAVE NOW", memory_flush=True,
        session_reset="idle", session_idle_expiry=3600, session_reset_notice=True,
    )  # fmt: skip
    async with running_gateway(tmp_path / "data", [quiet], clock=clock, session_watch=0.2) as h:
        await turn(h, "one", 1)
        first = h.store.get_session("corp", "")
        assert first is not None
        await h.settled()
        assert flush_runs(h) == [] and len(inputs(h, "corp")) == 1  # not expired yet: the watcher leaves it be
        clock.advance(2 * 3600)  # the chat stays silent
        await h.wait_for(lambda: flush_runs(h) == [("ok", first.session_id, 1)], "the watcher's flush turn")
        await h.wait_for(lambda: len(gateway_answers(h, "web:corp")) == 1, "the reset notice")
        # 2h of the clock's jump, plus the real seconds between the run's end and the watcher's look (rounded: a
        # loaded machine may take more than half a second, which reads "2h1s")
        [notice] = gateway_answers(h, "web:corp")
        assert re.fullmatch(r"Session reset: idle for 2h([1-9]s)?\.", notice), notice
        assert [prompt_texts(d) for d in inputs(h, "corp")] == [["one"], ["SAVE NOW"]]  # no agent for no rows
        assert h.store.get_session("corp", "") is None and h.replies("web:corp") == ["echo: one"]
        # the flush turn's usage counts like any run's: the turn "one" and the flush, both in the old session
        [spent] = h.store.usage_sums(("session_id",), folder="corp")
        assert spent.key == {"session_id": first.session_id} and spent.outputs == 2
        assert spent.cost_usd == pytest.approx(0.02)
        await turn(h, "two", 2)
        last = inputs(h, "corp")[-1]
        assert prompt_texts(last) == ["two"] and "sessionId" not in last and 'event="auto_reset"' in last["prompt"]
        assert len(flush_runs(h)) == 1  # flushed once


async def test_new_without_text_flushes_at_once_and_stop_stops_the_flush(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [group(memory_flush=True)], session_watch=3600) as h:
        await turn(h, "one", 1)
        first = h.store.get_session("corp", "")
        assert first is not None
        await h.send("web:corp", "/new")
        await h.wait_for(lambda: flush_runs(h) == [("ok", first.session_id, 1)], "the flush /new started itself")
        assert [prompt_texts(d) for d in inputs(h, "corp")] == [["one"], ["SAVE NOW"]]

        await turn(h, "two", 2)
        second = h.store.get_session("corp", "")
        assert second is not None
        h.store.update_group_config("corp", lambda c: {**c, "env": {**c["env"], "ECHO_DELAY": "30"}})
        await h.send("web:corp", "/new")
        await h.wait_for(lambda: len(inputs(h, "corp")) == 4, "the second flush turn to start")
        started = time.monotonic()
        await h.send("web:corp", "/stop")
        await h.wait_for(lambda: ("stopped", second.session_id, 0) in flush_runs(h), "the flush turn stopped")
        assert time.monotonic() - started < 15  # not its 30 s
        assert h.store.get_reset("corp", "") is not None  # the reset stands; the next prompt still says so
