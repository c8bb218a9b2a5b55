"""SPEC §9's outcome rules as one pure function: how a run ended → its rows, cursor, session, and what the queue hears.

============================================  ===========  ==========  ==================  ===================
how the run ended                             rows         cursor      session             queue is told
============================================  ===========  ==========  ==================  ===================
it never started                              still new    stays       evicted             RETRY
``/stop``                                     done         advances    newSessionId kept   STOPPED (no retry)
it produced replies or actions (even if it   done         advances    newSessionId kept   OK
then failed, timed out, hit the reply cap,
or kanmon could not store or refused them)
exit 0, nothing to say                        done         advances    newSessionId kept   OK
anything else (exit ≠ 0, timeout, crash,      still new    stays       evicted             RETRY
an error block with nothing to say)
============================================  ===========  ==========  ==================  ===================

After the last attempt the queue dead-letters the batch (rows ``dead``, cursor past them, session evicted, one
apology). "Produced" counts replies the agent wrote (and outputs with actions: a run that acted is never run a
second time, which would act again), not rows kanmon managed to store: kanmon's own bookkeeping
trouble is never the agent's failure, and an agent that already answered is never run a second time for it
(hardening item 4). The run's status is ``ok``, ``error``, ``timeout`` or ``stopped``; its error says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kanmon.container import Exited, ExitReason
from kanmon.queue import LaneResult
from kanmon.redaction import redact
from kanmon.store import RunEnd, RunStatus

__all__ = ["Ending", "Outcome", "bare_end", "judge"]

_TIMEOUTS = (ExitReason.IDLE_TIMEOUT, ExitReason.HARD_TIMEOUT)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ending:
    """How a run ended, as its runner saw it.

    ``exited`` is None when the run never started (or its container was gone after a restart without a reply).
    ``produced`` counts the replies it wrote for the chat; ``error_block`` is the error of an output block that had
    nothing to say; ``capped`` the reply cap when kanmon stopped the run for reaching it; ``problems`` why it could
    not start, or what kanmon itself could not record or refused; ``acted`` counts the actions its outputs carried.
    """

    exited: Exited | None
    produced: int = 0
    error_block: str | None = None
    capped: int | None = None
    problems: Sequence[str] = ()
    acted: int = 0

    def log(self) -> tuple[str, str]:
        """The run log kept for ``gated run-log``: the capped tails of stderr and of stdout outside blocks
        (:data:`kanmon.container.protocol.LOG_LIMIT` each), with every secret kanmon knows blanked
        (:func:`kanmon.redaction.redact`: the store never holds one, SPEC §14)."""
        if self.exited is None:
            return "", ""
        return redact(self.exited.stderr), redact(self.exited.stray)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What becomes of a run's batch (SPEC §9)."""

    result: LaneResult
    rows: Literal["done", "new"]
    status: RunStatus
    error: str | None

    @property
    def evict_session(self) -> bool:
        """A batch left for a retry starts its next attempt without the session (SPEC §9)."""
        return self.result is LaneResult.RETRY


def judge(ending: Ending) -> Outcome:
    """The outcome of ``ending`` by the table in the module docstring."""
    exited = ending.exited
    if exited is None:
        return Outcome(LaneResult.RETRY, "new", "error", _join(ending.problems) or "the run did not start")
    if exited.reason is ExitReason.STOPPED and ending.capped is None:
        return Outcome(LaneResult.STOPPED, "done", "stopped", _join(ending.problems))
    error = _join([*_agent_error(ending, exited), *ending.problems])
    timed_out = exited.reason in _TIMEOUTS
    if ending.produced or ending.acted:
        status: RunStatus = "timeout" if timed_out else ("ok" if error is None else "error")
        return Outcome(LaneResult.OK, "done", status, error)
    if error is None:
        return Outcome(LaneResult.OK, "done", "ok", None)  # exit 0 with nothing to say is the agent's choice
    return Outcome(LaneResult.RETRY, "new", "timeout" if timed_out else "error", error)


def _agent_error(ending: Ending, exited: Exited) -> list[str]:
    if ending.capped is not None:
        return [f"stopped after {ending.capped} replies (runtime.max_replies)"]
    if exited.reason is not ExitReason.EXIT:
        return [f"{exited.reason.value} (exit code {exited.code})"]
    if exited.code != 0:
        tail = exited.stderr.strip().splitlines()[-1:] if exited.stderr else []
        return [f"exit code {exited.code}" + (f": {tail[0][:200]}" if tail else "")]
    return [ending.error_block] if ending.error_block else []


def _join(parts: Sequence[str]) -> str | None:
    return "; ".join(parts) or None


def bare_end(end: RunEnd, outcome: Outcome, *, replies: bool = True) -> RunEnd:
    """The least of ``end`` kanmon records when ``end`` itself could not be (a bookkeeping fault, not an outage): the
    run ends ``error`` saying why, its rows get the outcome's fate and its session is evicted. It keeps the replies
    not yet recorded (the chat's answer) unless ``replies`` is False, the last resort when they may be what failed;
    it drops what was only bookkeeping: the usage the outputs reported and the run log."""
    return RunEnd(
        run_id=end.run_id, chat_jid=end.chat_jid, seqs=end.seqs, rows=outcome.rows, run_status="error",
        folder=end.folder, topic=end.topic, evict_session=True, output_count=end.output_count,
        replies=end.replies if replies else (),
        error=f"kanmon could not record this run's outcome ({outcome.status}: {outcome.error or 'no error'})",
    )  # fmt: skip
