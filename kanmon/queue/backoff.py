"""The retry policy of failed runs (SPEC §8): exponential backoff 5 s, 10 s, 20 s … up to ``max_attempts`` runs.

The delays come from tenacity's ``wait_exponential`` (SPEC §1: tenacity for every retry); the queue does the waiting
itself on its injected clock, because a lane in backoff must not hold a slot or block other lanes the way a
``tenacity.AsyncRetrying`` loop around the run would. Jitter, when asked for, draws from an injected
``random.Random`` so tests can pin it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import tenacity

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how late a lane whose run failed without output is run again."""

    #: Runs of one batch in total (the first one included) before it is dead-lettered.
    max_attempts: int = 3
    #: Seconds before the first retry; each later retry waits twice as long.
    base_delay: float = 5.0
    #: Upper bound of any one delay.
    max_delay: float = 300.0
    #: Up to this many seconds added at random, so lanes that failed together do not retry in lockstep.
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.jitter < 0:
            raise ValueError("retry delays and jitter must not be negative")

    def gives_up_after(self, failures: int) -> bool:
        """True when ``failures`` consecutive failed runs exhaust the attempts."""
        return failures >= self.max_attempts

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1 → base, 2 → 2 × base, …)."""
        if failures < 1:
            raise ValueError(f"failures counts from 1, not {failures}")
        wait = tenacity.wait_exponential(multiplier=self.base_delay, max=self.max_delay)
        state = tenacity.RetryCallState(retry_object=tenacity.AsyncRetrying(), fn=None, args=(), kwargs={})
        state.attempt_number = failures
        seconds = float(wait(state))
        if self.jitter:
            seconds += (rng or random.Random()).uniform(0.0, self.jitter)  # noqa: S311 - jitter, not secrets
        return seconds
