"""When a failed delivery is tried again (SPEC §11): the error a deliverer raises, and the retry policy of a channel."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Literal

from kanmon import redaction
from kanmon.gateway.errors import GatewayError
from kanmon.store import Message

__all__ = ["DeliveryError", "DeliveryPolicy", "unexpected_failure"]


class DeliveryError(GatewayError):
    """A channel did not take a message; ``transient`` ones are tried again later, no earlier than ``retry_after``
    seconds from now when the channel said when (an HTTP ``Retry-After``)."""

    def __init__(self, message: str, *, transient: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class DeliveryPolicy:
    """How long a channel's transient failures are retried, how far apart (SPEC §11), and how many of its chats
    are sent to at once.

    A failed attempt leaves the row ``pending`` until ``retry_base * 2**(attempts-1)`` seconds (plus up to a quarter
    of jitter, at most ``max_backoff``) have passed, or the ``retry_after`` the channel asked for when that is longer
    (also at most ``max_backoff``: a receiver does not park a chat for days); once ``deadline`` seconds have passed
    since the row was stored, the next transient failure fails it for good. ``retry_base`` 0 retries on the next
    pass; ``deadline`` None never gives up. ``chats_at_once`` chats of one channel have a send in flight at most
    (never two sends of one chat).
    """

    retry_base: float = 0.0
    max_backoff: float = 900.0
    deadline: float | None = None
    chats_at_once: int = 8

    def backoff(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (growing, jittered from ``rng``, capped)."""
        if self.retry_base <= 0:
            return 0.0
        grown = self.retry_base * 2.0 ** min(max(attempts - 1, 0), 30)
        return min(self.max_backoff, grown * (1.0 + rng.random() / 4))

    def after_failure(
        self, row: Message, now: dt.datetime, rng: random.Random, *, transient: bool, retry_after: float | None = None
    ) -> tuple[Literal["pending", "failed"], dt.datetime | None]:
        """What a failed attempt at ``row`` at ``now`` leaves: ``failed``, or ``pending`` until a backoff (None: due
        at once) that never passes the deadline. ``retry_after``: the seconds the channel asked to be left alone
        (:attr:`DeliveryError.retry_after`), waited out when longer than the backoff, up to ``max_backoff``."""
        if not transient:
            return "failed", None
        last = None if self.deadline is None else row.received_at + dt.timedelta(seconds=self.deadline)
        if last is not None and now >= last:
            return "failed", None
        delay = self.backoff(row.delivery_attempts + 1, rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        if delay <= 0:
            return "pending", None
        retry_at = now + dt.timedelta(seconds=delay)
        return "pending", retry_at if last is None else min(retry_at, last)  # one last try at the deadline itself


def unexpected_failure(raised: Exception) -> DeliveryError:
    """A deliverer's error of another kind, as the transient DeliveryError it counts as (its text redacted, SPEC §14:
    it goes into ``delivery_error``)."""
    return DeliveryError(redaction.redact(f"{type(raised).__name__}: {raised}"), transient=True)
