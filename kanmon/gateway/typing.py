""" "The agent is working" (issue 14 item 5): a chat topic's signal from a run's start to its first reply or its end.

The runner's watcher (:func:`kanmon.gateway.watch.watch`) tells :class:`TypingSignal` that run ``R`` started for its
reply chat and topic, and that it stopped (its first reply that is more than ``⏳`` status lines, or its end, however
it ended: success, error, timeout, ``/stop``, or gated letting go of it). Two things follow, neither stored and
neither ever waited for by the run:

* every change of a topic's state (working or not) goes to ``on_change`` as a :class:`Working`: the gateway publishes
  it on its live feed, and the web chat's stream turns it into an ``event: working`` for that topic;
* the chat's channel adapter, if it registered with ``capabilities: {"typing": true}``, is sent ``POST <url>/typing``
  ``{"chat_jid", "thread_id", "on": true}`` at the run's start and again every ``interval`` seconds, and one
  ``{…, "on": false}`` when the run stops (arizuko's body and its ``TypingRefresher`` habit; Telegram shows an action
  for five seconds). Best effort: each request is bounded by a timeout, never retried, a failure is logged at debug
  and counted in ``kanmon_typing_requests_total{result}``; a hanging adapter costs only its own indicator.

One asyncio task per run and adapter sends the pings. When the run stops, the task ends at its next wait, not in
the middle of a ping: a ping in flight is answered (and counted) before the ``off`` goes, so an adapter never gets an
``on`` after the ``off`` (which would show the indicator again after the reply). :meth:`TypingSignal.close` (gated
stopping) cancels and awaits every task left, so none outlives the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from kanmon.clock import Clock
from kanmon.store import Channel

if TYPE_CHECKING:
    import httpx  # imported where used: gated starts without it (see kanmon.lazy)

__all__ = ["Ping", "TypingSignal", "Working", "adapter_ping", "is_status_only", "typing_channel"]

logger = logging.getLogger(__name__)

STATUS_MARK = "⏳"  # how a <status> line shows in a reply (kanmon.container.protocol.clean_result)

#: Sends one typing request for ``(chat_jid, topic, on)``; never raises, returns once answered or timed out.
Ping = Callable[[str, str, bool], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Working:
    """A change of one chat topic's state: ``on`` while a run works on it, off at its first reply or end."""

    chat_jid: str
    topic: str
    on: bool


@dataclass(slots=True)
class _Run:
    chat_jid: str
    topic: str
    ping: Ping | None
    loop: asyncio.Task[None] | None
    stop: asyncio.Event


def is_status_only(text: str) -> bool:
    """True when ``text`` is nothing but ``⏳`` status lines: the agent says it is still at work, it has not replied."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(line.lstrip().startswith(STATUS_MARK) for line in lines)


class TypingSignal:
    """Per-run "working" state and typing pings; see the module docstring.

    ``pinger(chat_jid)`` gives the ping of the adapter that owns the chat when it takes typing (else None); it is
    asked once, at the run's start. ``interval`` is in seconds of ``clock`` time; 0 sends no pings at all.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        interval: float,
        pinger: Callable[[str], Ping | None],
        on_change: Callable[[Working], None] = lambda working: None,
    ) -> None:
        self._clock = clock
        self.interval = interval
        self._pinger = pinger
        self._on_change = on_change
        self._runs: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def working(self, chat_jid: str, topic: str) -> bool:
        """Whether a run is working on ``chat_jid``'s ``topic`` now."""
        return any(run.chat_jid == chat_jid and run.topic == topic for run in self._runs.values())

    def working_topics(self, chat_jid: str) -> list[str]:
        """The topics of ``chat_jid`` a run is working on now, sorted."""
        return sorted({run.topic for run in self._runs.values() if run.chat_jid == chat_jid})

    def started(self, run_id: str, chat_jid: str, topic: str) -> None:
        """Run ``run_id`` started (or was re-attached) and replies into ``chat_jid``'s ``topic``."""
        if run_id in self._runs:
            return
        was = self.working(chat_jid, topic)
        ping = self._pinger(chat_jid) if self.interval > 0 else None
        stop = asyncio.Event()
        loop = self._spawn(self._keep(ping, chat_jid, topic, stop), run_id) if ping is not None else None
        self._runs[run_id] = _Run(chat_jid, topic, ping, loop, stop)
        if not was:
            self._on_change(Working(chat_jid, topic, True))

    def stopped(self, run_id: str) -> None:
        """Run ``run_id`` replied or ended: no more pings for it, one ``on: false``; idempotent."""
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        run.stop.set()
        if run.loop is not None and run.ping is not None:
            self._spawn(self._off(run.loop, run.ping, run.chat_jid, run.topic), run_id)
        if not self.working(run.chat_jid, run.topic):
            self._on_change(Working(run.chat_jid, run.topic, False))

    async def close(self) -> None:
        """Cancel every ping still going and wait for them (gated stopping)."""
        self._runs.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[None, None, None], run_id: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"kanmon-typing-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _keep(self, ping: Ping, chat_jid: str, topic: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await ping(chat_jid, topic, True)  # not interrupted by the stop: see the module docstring
            stopped, slept = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._clock.sleep(self.interval))
            try:
                await asyncio.wait({stopped, slept}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                slept.cancel()

    async def _off(self, loop: asyncio.Task[None], ping: Ping, chat_jid: str, topic: str) -> None:
        await asyncio.gather(loop, return_exceptions=True)  # its last "on" is answered before the "off" goes
        await ping(chat_jid, topic, False)


# ---------------------------------------------------------------------------------------------------- adapters
def typing_channel(channels: Sequence[Channel], chat_jid: str) -> Channel | None:
    """The registered adapter that owns ``chat_jid`` if it declared ``capabilities.typing: true`` (prefixes never
    overlap between adapters: registration refuses it, so at most one owns a JID)."""
    for channel in channels:
        if chat_jid.startswith(tuple(channel.jid_prefixes)):
            return channel if channel.capabilities.get("typing") is True else None
    return None


def adapter_ping(
    channel: Channel, client: httpx.AsyncClient, *, secret: str, timeout: float, requests: Counter | None = None
) -> Ping:
    """The ping of ``channel``: ``POST <url>/typing`` with the channel secret as bearer, at most ``timeout`` seconds
    in all (connecting included), never retried; counted in ``requests`` by ``result`` (``ok``, ``refused``: an
    answer other than 2xx, ``timeout``, ``unreachable``)."""
    import httpx

    url = channel.url.rstrip("/") + "/typing"
    headers = {"Authorization": f"Bearer {secret}"}

    async def ping(chat_jid: str, topic: str, on: bool) -> None:
        body = {"chat_jid": chat_jid, "thread_id": topic or None, "on": on}
        try:
            async with asyncio.timeout(timeout):
                response = await client.post(url, json=body, headers=headers, timeout=timeout)
            result = "ok" if response.is_success else "refused"
            if result != "ok":
                logger.debug("typing for %s: adapter %s answered %d", chat_jid, channel.name, response.status_code)
        except (TimeoutError, httpx.TimeoutException):
            result = "timeout"
            logger.debug("typing for %s: adapter %s did not answer within %gs", chat_jid, channel.name, timeout)
        except httpx.HTTPError as exc:
            result = "unreachable"
            logger.debug("typing for %s: adapter %s unreachable: %s", chat_jid, channel.name, type(exc).__name__)
        if requests is not None:
            requests.labels(result=result).inc()

    return ping
