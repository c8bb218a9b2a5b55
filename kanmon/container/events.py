"""What a run reports while it runs: outputs, heartbeats, and finally how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kanmon.container.actions import Action

__all__ = ["AttachmentRef", "ExitReason", "Exited", "Heartbeat", "Output", "RunEvent", "Usage"]


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """A file an output block lists (``{"path": "out/chart.png", "name": "chart.png"}``), as the agent wrote it.

    ``path`` is relative to the agent's folder (unchecked here: :mod:`kanmon.gateway.folder_files` checks it);
    ``name`` is what the chat should call the file (None: the path's last part).
    """

    path: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What the model used for one output block, as the agent reported it (``usage`` in the block, issue 16 item 4).

    Token counts are whole numbers >= 0; ``cost_usd`` is US dollars >= 0. A number the agent left out is 0.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Output:
    """One output block of the agent (SPEC §9), numbered per run from 0.

    ``result`` is the raw text the agent sent; ``text`` is what a chat should see (``clean_result`` applied),
    empty when there is nothing to deliver; ``attachments`` the files the block lists; ``actions`` what else it
    asks kanmon to do (:mod:`kanmon.container.actions`: send elsewhere, schedule, cancel or list tasks); ``usage``
    what the model used (None when the block says nothing, or said it wrongly: then ``usage_problem`` says why, and
    the block still counts).
    """

    index: int
    status: Literal["ok", "error"]
    result: str | None
    text: str
    new_session_id: str | None = None
    error: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    actions: tuple[Action, ...] = ()
    usage: Usage | None = None
    usage_problem: str | None = None

    @property
    def deliverable(self) -> bool:
        """True when this output carries text or files for the chat."""
        return bool(self.text) or bool(self.attachments)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The agent said it is still alive (``{"heartbeat": true}``); it resets the idle timer and is never delivered."""


class ExitReason(enum.StrEnum):
    """Why a run ended: a closed set."""

    EXIT = "exit"  # the agent exited by itself
    IDLE_TIMEOUT = "idle_timeout"  # no block within idle_timeout: stopped
    HARD_TIMEOUT = "hard_timeout"  # ran longer than timeout: stopped
    OUTPUT_LIMIT = "output_limit"  # wrote more than the output cap: killed
    STOPPED = "stopped"  # stop() was called (e.g. /stop)
    KILLED = "killed"  # kill() was called
    LOST = "lost"  # the run vanished without an exit code (reclaimed after a crash of the host)


@dataclass(frozen=True, slots=True)
class Exited:
    """The last event of every run.

    ``code`` is the exit status (None when unknown), ``outputs`` how many output blocks arrived,
    ``delivered`` how many of them carried text; ``stderr`` and ``stray`` are capped tails of standard
    error and of stdout text outside the blocks, for the run log.
    """

    code: int | None
    reason: ExitReason
    outputs: int = 0
    delivered: int = 0
    stderr: str = ""
    stray: str = ""

    @property
    def had_output(self) -> bool:
        """True when at least one output carried text for the chat (SPEC §9's "error with output")."""
        return self.delivered > 0

    @property
    def ok(self) -> bool:
        """True when the agent exited by itself with status 0."""
        return self.reason is ExitReason.EXIT and self.code == 0


RunEvent = Output | Heartbeat | Exited
