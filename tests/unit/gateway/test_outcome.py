"""SPEC §9's outcome table, row by row: how a run ended → its rows, cursor, session, and what the queue hears."""

from __future__ import annotations

import pytest

from kanmon.container import Exited, ExitReason
from kanmon.gateway.outcome import Ending, Outcome, judge
from kanmon.queue import LaneResult

OK, RETRY, STOPPED = LaneResult.OK, LaneResult.RETRY, LaneResult.STOPPED


def exited(reason: ExitReason = ExitReason.EXIT, code: int | None = 0, stderr: str = "") -> Exited:
    return Exited(code=code, reason=reason, stderr=stderr)


CASES = [
    # (what happened, the ending, (queue, rows, run status, error contains))
    ("never started", Ending(exited=None, problems=["start failed: no image"]), (RETRY, "new", "error", "no image")),
    ("container gone, never spoke", Ending(exited=None), (RETRY, "new", "error", "did not start")),
    ("/stop", Ending(exited=exited(ExitReason.STOPPED, 143)), (STOPPED, "done", "stopped", None)),
    ("/stop after replies", Ending(exited=exited(ExitReason.STOPPED, 143), produced=2),
     (STOPPED, "done", "stopped", None)),
    ("exit 0 with replies", Ending(exited=exited(), produced=1), (OK, "done", "ok", None)),
    ("exit 0, nothing to say", Ending(exited=exited()), (OK, "done", "ok", None)),
    ("exit 1 after replies", Ending(exited=exited(code=1, stderr="boom"), produced=1), (OK, "done", "error", "boom")),
    ("exit 1, no replies", Ending(exited=exited(code=2, stderr="x\nlast line")), (RETRY, "new", "error", "last line")),
    ("error block, no replies", Ending(exited=exited(), error_block="quota"), (RETRY, "new", "error", "quota")),
    ("error block after replies", Ending(exited=exited(), produced=1, error_block="q"), (OK, "done", "error", "q")),
    ("idle timeout, silent", Ending(exited=exited(ExitReason.IDLE_TIMEOUT, 143)), (RETRY, "new", "timeout", "idle")),
    ("hard timeout after replies", Ending(exited=exited(ExitReason.HARD_TIMEOUT, 137), produced=3),
     (OK, "done", "timeout", "hard_timeout")),
    ("output cap", Ending(exited=exited(ExitReason.OUTPUT_LIMIT, 137)), (RETRY, "new", "error", "output_limit")),
    ("reply cap reached", Ending(exited=exited(ExitReason.STOPPED, 143), produced=500, capped=500),
     (OK, "done", "error", "after 500 replies")),
    ("replies kanmon could not store",
     Ending(exited=exited(), produced=2, problems=["replies 0..1 could not be stored"]),
     (OK, "done", "error", "could not be stored")),
    ("reclaimed, container gone, had answered", Ending(exited=exited(ExitReason.LOST, None), produced=1),
     (OK, "done", "error", "lost")),
]  # fmt: skip


@pytest.mark.parametrize(("ending", "expected"), [(case[1], case[2]) for case in CASES], ids=[c[0] for c in CASES])
def test_the_outcome_table(ending: Ending, expected: tuple[LaneResult, str, str, str | None]) -> None:
    result, rows, status, error = expected
    outcome = judge(ending)
    assert (outcome.result, outcome.rows, outcome.status) == (result, rows, status)
    if error is None:
        assert outcome.error is None
    else:
        assert outcome.error is not None and error in outcome.error
    # the rule every row obeys: a batch left for a retry keeps its rows, loses its session; anything else moves on
    assert outcome.evict_session == (outcome.rows == "new") == (outcome.result is RETRY)


def test_an_agent_that_produced_output_is_never_run_again_whatever_else_went_wrong() -> None:
    for reason in ExitReason:
        for code in (0, 1, None):
            ending = Ending(exited=exited(reason, code), produced=1, problems=["the store refused a reply"])
            outcome: Outcome = judge(ending)
            assert outcome.result is not RETRY and outcome.rows == "done"
