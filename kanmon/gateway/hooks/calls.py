"""Calling one hook implementation without ever letting it stall gated (issue 16 item 6; Hermes' trap was a hook
that blocked its loop).

Each implementation gets a daemon thread of its own, started at its first call, that runs its calls one after the
other in the order they came (an observer sees events in order). The caller never runs plugin code:

* an **observer** event is queued and the caller goes on at once (:meth:`ImplCaller.post`);
* a **decider** is waited for at most ``timeout`` seconds (:meth:`ImplCaller.call` on a thread,
  :meth:`ImplCaller.acall` on the event loop); past it the caller goes on without its answer, and the call is
  cancelled if it had not begun.

A call that raises (anything, ``SystemExit`` included) is logged with its traceback and counts as no answer. An
implementation whose current call has run longer than ``timeout`` is *stuck*: until that call returns, its events
are dropped and deciders skip it without waiting (logged once when it gets stuck, once when it is back), so a hook
that sleeps forever costs one thread and one timeout, not one per message. Events queued beyond :data:`MAX_BACKLOG`
are dropped too. The threads are daemon threads: a stuck hook never keeps gated from exiting. Timeouts are real
seconds (``time.monotonic``), not the injected clock's: they bound real threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from pluggy import HookImpl

__all__ = ["MAX_BACKLOG", "ImplCaller"]

logger = logging.getLogger("kanmon.gateway.hooks")

MAX_BACKLOG: Final = 10_000  # events waiting for one implementation; past it they are dropped

_Job = tuple[tuple[Any, ...], "concurrent.futures.Future[Any]"]


class ImplCaller:
    """Calls one implementation (``plugin.hook``) on its own thread; see the module docstring."""

    def __init__(
        self, impl: HookImpl, hook: str, timeout: float, count: Callable[[str, str], None] = lambda name, result: None
    ) -> None:
        self.name = f"{impl.plugin_name}.{hook}"
        self._impl = impl
        self._timeout = timeout
        self._count = count  # (name, result): ok, error, late, dropped (kanmon_hook_calls_total)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._waiting = 0
        self._began: float | None = None  # time.monotonic() when the running call began
        self._stuck = False
        self._dropped = 0

    # ------------------------------------------------------------------------------------------------ callers
    def post(self, kwargs: Mapping[str, Any]) -> concurrent.futures.Future[Any] | None:
        """Queue a call with the arguments the implementation takes from ``kwargs``; None when it was dropped (the
        implementation is stuck or too far behind)."""
        with self._lock:
            if self._is_stuck() or self._waiting >= MAX_BACKLOG:
                self._dropped += 1
                self._count(self.name, "dropped")
                return None
            self._waiting += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=f"kanmon-hook-{self.name}", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((tuple(kwargs[name] for name in self._impl.argnames), future))
        return future

    def call(self, kwargs: Mapping[str, Any]) -> Any:
        """Call it and wait at most the timeout (on a thread, never the event loop); None when it did not answer."""
        future = self.post(kwargs)
        if future is None:
            return None
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            self._late(future)
        return None

    async def acall(self, kwargs: Mapping[str, Any]) -> Any:
        """:meth:`call` for the event loop: the loop waits without blocking, at most the timeout."""
        future = self.post(kwargs)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self._timeout)
        except TimeoutError:
            self._late(future)
        return None

    def close(self) -> None:
        """Let the thread end once the calls queued so far are done (a stuck call is left to itself)."""
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)
                self._thread = None

    # ------------------------------------------------------------------------------------------------ the thread
    def _late(self, future: concurrent.futures.Future[Any]) -> None:
        self._count(self.name, "late")
        if future.cancel():
            logger.warning("hook %s waited longer than %gs behind earlier calls; skipped", self.name, self._timeout)
        else:
            logger.warning("hook %s took longer than %gs; going on without its answer", self.name, self._timeout)

    def _is_stuck(self) -> bool:
        """True while the running call has gone past the timeout (logged once per such call); under the lock."""
        began = self._began
        if began is None or time.monotonic() - began <= self._timeout:
            return False
        if not self._stuck:
            self._stuck = True
            logger.warning(
                "hook %s has been running for over %gs; its events are skipped until it returns", self.name,
                self._timeout,
            )  # fmt: skip
        return True

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            args, future = job
            with self._lock:
                self._waiting -= 1
                if not future.set_running_or_notify_cancel():
                    continue
                self._began = time.monotonic()
            result, outcome = None, "error"
            try:
                result = self._impl.function(*args)
                outcome = "ok"
            except BaseException as exc:  # a plugin's fault, whatever it is, stays in its thread: no answer
                logger.error("hook %s raised %s: %s; skipped", self.name, type(exc).__name__, exc, exc_info=exc)
            finally:
                self._count(self.name, outcome)
                self._finished()
                future.set_result(result)

    def _finished(self) -> None:
        with self._lock:
            seconds = time.monotonic() - (self._began or time.monotonic())
            self._began = None
            if self._stuck:
                self._stuck = False
                logger.warning(
                    "hook %s returned after %.1fs; %d of its events were skipped meanwhile", self.name, seconds,
                    self._dropped,
                )  # fmt: skip
                self._dropped = 0
