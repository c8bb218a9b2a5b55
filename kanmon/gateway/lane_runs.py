"""What the runner keeps per lane, and which sessions its runs hold (:class:`~kanmon.gateway.runner.LaneRunner`).

A session is ``(folder, topic)`` whatever the chat (SPEC §2, §10), but a lane is not one session: a platform chat
runs in its folder's lane and a ``web:`` topic in its own, so a forum thread ``42`` and a web topic ``42`` of one
folder are two lanes on one session. The store's begin makes sure two runs never hold one session at once
(:mod:`kanmon.store.run_begins`); :func:`held_elsewhere` lets the runner see it before it starts an agent that would
find nothing it may take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kanmon.container.handle import RunHandle
from kanmon.gateway.prompt import Batch
from kanmon.queue import Lane
from kanmon.store import Run

__all__ = ["Begun", "LaneRuns", "Session", "held_elsewhere"]

Session = tuple[str, str]  # (folder, topic)


@dataclass(frozen=True, slots=True)
class Begun:
    """A run that took its batch (its row in ``session_log`` is in flight): what ending it needs, whatever happens."""

    run: Run
    batch: Batch
    handle: RunHandle | None
    began: float  # the clock's monotonic seconds at its start


@dataclass(slots=True)
class LaneRuns:
    """What the runner keeps per lane between and during its runs (dropped once there is nothing to keep)."""

    handle: RunHandle | None = None  # the live run's, for /stop
    failed: Batch | None = None  # the batch a retry or dead letter is about
    orphan: Run | None = None  # a run a previous gated left in flight, resumed before anything else
    stop_asked: bool = False  # /stop arrived before the run's handle existed
    active: bool = False  # inside run_lane: a /stop without a handle is for the run being started
    begun: Begun | None = None  # the lane's run from its begin until its end is recorded: it holds its session

    @property
    def idle(self) -> bool:
        return self.handle is None and self.failed is None and self.orphan is None and not self.active

    @property
    def holds(self) -> Session | None:
        """The session a run of this lane holds: the begun run's, or a reclaimed run's not yet resumed."""
        if self.begun is not None:
            return self.begun.run.group_folder, self.begun.run.topic
        return (self.orphan.group_folder, self.orphan.topic) if self.orphan is not None else None


def held_elsewhere(
    lanes: Mapping[Lane, LaneRuns], lane: Lane, flushing: Mapping[Lane, Session] | None = None
) -> frozenset[Session]:
    """The sessions of ``lane``'s folder that runs of other lanes hold, as of now, memory flush turns (``flushing``,
    by lane) included (a copy: the store's begin reads it on its own thread, while the event loop changes ``lanes``)."""
    held = [state.holds for other, state in lanes.items() if other != lane]
    held += [session for other, session in (flushing or {}).items() if other != lane]
    return frozenset(session for session in held if session is not None and session[0] == lane.folder)
