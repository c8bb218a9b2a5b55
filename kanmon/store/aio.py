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
import contextvars
import logging
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Generic, ParamSpec, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from kanmon.clock import Clock, SystemClock
from kanmon.store.errors import StoreFenced, StoreUnavailable
from kanmon.store.store import Store

__all__ = ["AsyncStore", "GroupCommit"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Item = TypeVar("Item")
R = TypeVar("R")


class AsyncStore:
    """One store's blocking calls, run off the event loop and retried while the database is away.

    ``max_wait`` caps one backoff step (seconds); ``threads`` defaults to the store's pool size (a connection per
    thread, none waiting in the pool).
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
        #: The clock its retries wait on, and the time callers without a clock of their own stamp with.
        self.clock: Clock = clock or SystemClock()
        self._executor = ThreadPoolExecutor(max_workers=threads or store.pool_size, thread_name_prefix="kanmon-store")
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
            sleep=self.clock.sleep,
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


class GroupCommit(Generic[Item, R]):
    """Writes of one kind from many callers, made together: one transaction for whatever is waiting (group commit).

    ``apply_many`` is a store method that applies a list of items in one transaction and returns one result per item,
    in order. A caller's write starts a transaction at once when none is in flight; writes that arrive meanwhile wait
    for it and then go together in the next. Nothing waits on a timer, so a lone write costs what it did, and lanes
    that finish together share one commit (and, on SQLite, one wait for the writer lock).

    The batch is taken on the store's thread once it holds this process's turn to write
    (:meth:`~kanmon.store.Store.writer_turn`), not when the transaction is asked for: on SQLite, the writes that
    arrive while it waits for another writer join it instead of waiting for the next turn.

    Retried while the database is unreachable (:meth:`AsyncStore.retrying`), unless made with ``retrying=False``:
    then its callers get the :class:`~kanmon.store.StoreUnavailable` at once (:meth:`AsyncStore.once`), as an
    adapter's HTTP request should rather than wait for the database. When a transaction of several items fails
    otherwise, each item is tried again alone, so one bad item fails only its own caller (an unreachable or fenced
    store is no item's fault: every caller gets that error). Cancelling the commit (a shutdown cancels every task)
    strands no caller: those whose writes its thread took get the transaction's outcome when the thread is done, the
    others a cancellation (their writes were not made).
    """

    def __init__(
        self, db: AsyncStore, apply_many: Callable[[list[Item]], list[R]], *, name: str, retrying: bool = True
    ) -> None:
        self._call = db.retrying if retrying else db.once
        self._db = db
        self._apply_many = apply_many
        self._name = name
        # appended on the event loop, taken on a store thread: deque's append and popleft are atomic
        self._waiting: deque[tuple[Item, asyncio.Future[R]]] = deque()
        self._flushing: asyncio.Task[None] | None = None
        #: transactions made, and items written, so far (benchmarks report the ratio)
        self.commits = 0
        self.items = 0

    async def __call__(self, item: Item) -> R:
        """Write ``item`` (with whatever else is waiting); returns its result or raises its error."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller cancelled meanwhile leaves no "never retrieved" warning
        self._waiting.append((item, future))
        if self._flushing is None:
            # an empty context: the commit is every waiting caller's, so its log lines carry none's run ids
            self._flushing = asyncio.create_task(
                self._flush(), name=f"kanmon-commit-{self._name}", context=contextvars.Context()
            )
        # shielded: a caller cancelled at shutdown must not cancel the others' transaction halfway
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                await self._commit()
        except asyncio.CancelledError:
            # cancelled (a shutdown cancels every task): the writes not taken yet are not made; their callers hear so
            while self._waiting:
                self._waiting.popleft()[1].cancel()
            raise
        finally:
            self._flushing = None

    def _take_and_apply(self, batch: list[tuple[Item, asyncio.Future[R]]]) -> list[R]:
        """On a store thread: add what waits to ``batch`` once this process may write, and apply it all."""
        with self._db.store.writer_turn():
            while self._waiting:
                batch.append(self._waiting.popleft())
            return self._apply_many([item for item, _ in batch])

    async def _commit(self) -> None:
        batch: list[tuple[Item, asyncio.Future[R]]] = []  # kept across retries: taken items are not taken again
        transaction = asyncio.ensure_future(self._call(self._take_and_apply, batch))
        try:
            results = await asyncio.shield(transaction)
        except asyncio.CancelledError:
            # the store's thread cannot be stopped halfway: its callers learn how the transaction ended when it does
            transaction.add_done_callback(partial(_settle_all, batch))
            raise
        except Exception as exc:
            if len(batch) <= 1 or isinstance(exc, StoreUnavailable | StoreFenced):  # no item's fault: all alike
                for _, future in batch:
                    _settle(future, exc)
                return
            logger.warning("%s: a transaction of %d failed (%s); trying each alone", self._name, len(batch), exc)
            for item, future in batch:
                try:
                    _resolve(future, (await self._call(self._apply_many, [item]))[0])
                except Exception as alone:
                    _settle(future, alone)
            return
        self.commits += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            _resolve(future, result)


def _settle_all(batch: list[tuple[Any, asyncio.Future[Any]]], transaction: asyncio.Future[list[Any]]) -> None:
    """Give each caller of ``batch`` the outcome of ``transaction``, which went on after its commit was cancelled."""
    if transaction.cancelled():
        for _, future in batch:
            future.cancel()
        return
    exc = transaction.exception()
    if exc is not None:
        for _, future in batch:
            _settle(future, exc)
        return
    for (_, future), result in zip(batch, transaction.result(), strict=True):
        _resolve(future, result)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _settle(future: asyncio.Future[T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _resolve(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)
