"""kanmon.queue: GroupQueue lanes, the global cap, fair scheduling, retries and graceful stop (SPEC §2, §8).

Knows nothing of SQL, containers or HTTP: the gateway hands it callbacks (run a lane, dead-letter a lane, stop a
lane's run) and enqueues lanes; the queue decides when each runs.
"""

from __future__ import annotations

from kanmon.queue.backoff import RetryPolicy
from kanmon.queue.group_queue import GroupQueue, LaneHook, QueueCounts, RunLane
from kanmon.queue.lane import Lane, LaneResult, lane_for

__all__ = [
    "GroupQueue",
    "Lane",
    "LaneHook",
    "LaneResult",
    "QueueCounts",
    "RetryPolicy",
    "RunLane",
    "lane_for",
]
