"""A fault of kanmon's own after a run began closes the run, so its session is free and its batch runs again.

A run's row in ``session_log`` holds its session (folder, topic) while it is ``running``: no other run may begin on it
(``kanmon.store.run_begins``). An exception that escaped the runner after the begin (writing the prompt, recording a
reply) left the row ``running``: the retry found its own session held, reported "nothing to run", and the lane's
messages waited until gated restarted, while every sweep started an agent for nothing (an outside review: 17 starts in
8 s). Now such a run ends as an error without output (its batch retried) or with output (never run twice).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kanmon.gateway import prompt, reclaim, usage
from tests.gateway_harness import FAST_RETRY, crashed_store, process_group, running_gateway


def fail_once(monkeypatch: pytest.MonkeyPatch, target: str, real: Callable[..., Any]) -> list[int]:
    """Make ``target`` (``module.name``) raise on its first call and act as ``real`` after; the calls, numbered."""
    calls: list[int] = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            raise RuntimeError("a fault of kanmon's own")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, failing_once)
    return calls


async def test_a_fault_while_writing_the_prompt_ends_the_run_and_the_batch_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fail_once(monkeypatch, "kanmon.gateway.runner.input_document", prompt.input_document)
    async with running_gateway(tmp_path / "data", [process_group("corp")], retry=FAST_RETRY) as h:
        await h.send("web:corp", "one")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: one"], "the answer after the retry", timeout=30)
        await h.settled()
        runs = sorted(h.store.recent_runs(), key=lambda run: run.started_at)
        assert [run.status for run in runs] == ["error", "ok"]
        assert "a fault of kanmon's own" in (runs[0].error or "")
        assert calls == [1, 2]


async def test_a_fault_after_a_reply_was_stored_ends_the_run_without_running_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_once(monkeypatch, "kanmon.gateway.runner.run_usage", usage.run_usage)
    # the first reply is stored while the run goes on (its second comes 1 s later), then the end fails once
    group = process_group("corp", {"ECHO_REPEAT": 2, "ECHO_DELAY": 1.0})
    async with running_gateway(tmp_path / "data", [group], retry=FAST_RETRY) as h:
        await h.send("web:corp", "one")
        await h.wait_for(lambda: [run.status for run in h.store.recent_runs()] == ["error"], "the run's end")
        await h.settled()
        assert h.replies("web:corp")[0] == "echo (1/2): one"  # what the chat had is kept, and nothing ran again
        assert len(h.store.recent_runs()) == 1 and [row.status for row in h.inbound("web:corp")] == ["done"]


async def test_a_fault_closing_a_reclaimed_run_whose_batch_was_settled_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run left in flight by a crash, whose batch an operator settled meanwhile, is closed when gated starts; a
    fault there must leave it to be reclaimed again, not forgotten with its row `starting` (holding its session)."""
    data = tmp_path / "data"
    crashed_store(data, "settled", instance="test", settled=True)  # settled while gated was down
    calls = fail_once(monkeypatch, "kanmon.gateway.runner.settled_end", reclaim.settled_end)

    async with running_gateway(data, [], retry=FAST_RETRY) as h:
        await h.wait_for(lambda: len(calls) == 2, "a second try at closing it")
        await h.send("web:corp", "and now")  # its session is free again
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: and now"], "the answer")
        await h.settled()
        runs = {run.id: run for run in h.store.recent_runs()}
        assert runs["ghost-run"].status == "error"
