"""A real clock whose wall time a test sets: for tests of what the gateway stamps, or of day and DST boundaries.

Only ``now()`` moves; ``monotonic()`` and ``sleep()`` stay real, so the gateway's timers run as in production.
"""

from __future__ import annotations

import datetime as dt

from kanmon.clock import SystemClock


class ShiftedClock(SystemClock):
    """The system clock with ``now()`` moved by ``offset``, and moved further by :meth:`advance`."""

    def __init__(self, offset: dt.timedelta = dt.timedelta()) -> None:
        self.offset = offset

    @classmethod
    def starting_at(cls, start: dt.datetime) -> ShiftedClock:
        """A clock whose ``now()`` is ``start`` at this moment and runs on from there."""
        return cls(start - dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return super().now() + self.offset

    def advance(self, delta: dt.timedelta | float) -> None:
        """Move ``now()`` forward by ``delta`` (a timedelta, or seconds)."""
        self.offset += delta if isinstance(delta, dt.timedelta) else dt.timedelta(seconds=delta)
