"""The store as asyncio code sees it: every blocking store call goes through :class:`AsyncStore`, and nothing else.

The :class:`~kanmon.store.Store` blocks (SQLAlchemy and its drivers are synchronous). The daemon's loop, runs,
delivery and HTTP handlers call it through one facade that

* runs each call on a thread pool of its own (sized to the connection pool, so a burst of calls queues here instead
  of inside SQLAlchemy's pool, and never takes the threads ``asyncio.to_thread`` lends to everything else);
* retries the calls that may be retried: :meth:`AsyncStore.retrying` waits out an unreachable or locked database
  with exponential backoff and jitter (tenacity), on the injected clock, for as long as it takes or until the caller
  is cancelled; :meth:`AsyncStore.once` tries once and lets :class:`~kanmon.store.StoreUnavailable` through (an HTTP
  request answers 503 rather than hang);
* knows whether the database is reachable (:attr:`AsyncStore.outage`), and says so once when an outage begins and
  once when it ends, however many callers are waiting it out (SPEC §14).

Store errors are already kanmon's own (:func:`kanmon.store.errors.translate_errors`); nothing SQLAlchemy escapes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from kanmon.clock import Clock, SystemClock
from kanmon.store.errors import StoreUnavailable
from kanmon.store.store import Store

__all__ = ["AsyncStore"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """One store's blocking calls, run off the event loop and retried while the database is away.

    ``max_wait`` caps one backoff step (seconds); ``threads`` defaults to the store's pool size plus two.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        threads: int | None = None,
        first_wait: float = 0.25,
        max_wait: float = 15.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self._clock: Clock = clock or SystemClock()
        self._executor = ThreadPoolExecutor(
            max_workers=threads or store.pool_size + 2, thread_name_prefix="kanmon-store"
        )
        self._first_wait = first_wait
        self._max_wait = max_wait
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        #: Why the database cannot be used right now (``None`` while it answers), for ``/readyz``.
        self.outage: str | None = None

    async def once(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the store's threads, once. Raises whatever the store raises."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))
        except StoreUnavailable as exc:
            self._down(exc)
            raise
        self._up()
        return result

    async def retrying(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`once`, tried again while the database is unreachable or locked, for as long as that lasts.

        Only :class:`StoreUnavailable` is retried: the call did not happen, so it is safe to make again (every store
        operation is one transaction). Cancelling the caller ends the wait. Other errors are raised at once.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=self._backoff,
            sleep=self._clock.sleep,
            before_sleep=self._waiting,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self.once(fn, *args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def close(self) -> None:
        """Let the threads go (calls in flight finish on their own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _backoff(self, state: RetryCallState) -> float:
        """Seconds before the next try: exponential from ``first_wait``, capped, plus jitter from the injected rng."""
        grown = self._first_wait * 2.0 ** min(state.attempt_number - 1, 30)
        return min(self._max_wait, grown) + self._rng.uniform(0.0, self._first_wait)

    # ------------------------------------------------------------------------------------------------ outages
    def _down(self, exc: StoreUnavailable) -> None:
        if self.outage is None:
            logger.error("store unavailable: %s; waiting for it (retrying with backoff)", exc)
        self.outage = str(exc)

    def _up(self) -> None:
        if self.outage is not None:
            logger.warning("store reachable again")
            self.outage = None

    @staticmethod
    def _waiting(state: RetryCallState) -> None:
        if state.attempt_number % 20 == 0:
            logger.warning("store still unavailable after %d attempts of one call", state.attempt_number)
