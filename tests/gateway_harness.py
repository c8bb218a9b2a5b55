"""A whole gateway in the test's event loop: real store, real runtimes, the real loop, queue and runner.

``running_gateway`` starts :class:`kanmon.gateway.Gateway` on a fresh SQLite store in ``data_dir`` and serves it in a
background task; the :class:`Harness` it yields sends messages the way an adapter would (``put_message`` plus the
in-process wake-up) and reads what came back from the store, which is the only place replies exist.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanmon.clock import Clock
from kanmon.container import echo_agent
from kanmon.container.docker import DockerRuntime
from kanmon.container.process import ProcessRuntime
from kanmon.gateway import Gateway, GatewayConfig, LoopConfig, RunDefaults
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.fetch import FetchPolicy
from kanmon.gateway.hooks import Hooks
from kanmon.gateway.scheduler import SchedulerConfig
from kanmon.queue import RetryPolicy
from kanmon.router import ImpulseConfig
from kanmon.store import Dispatch, Group, Message, NewMessage, Run, Store, upgrade

#: The file the echo agent appends each run's input document to when a group's env sets ECHO_RECORD to it.
RECORD = "inputs.jsonl"
_MESSAGE = re.compile(r"<message\b[^>]*>(.*?)</message>", re.DOTALL)

# Fast enough for tests, slow enough that an exponential backoff is still visible (0.2 s, 0.4 s, …).
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.2)
ECHO_COMMAND = [sys.executable, "-I", echo_agent.__file__]


def process_group(folder: str, env: Mapping[str, Any] | None = None, **config: Any) -> Group:
    """A group answered by the echo agent as a local process; ``env`` sets its ECHO_* knobs."""
    environment = {key: str(value) for key, value in (env or {}).items()}
    return Group(
        folder=folder, container_config={"runtime": "process", "command": ECHO_COMMAND, "env": environment, **config}
    )


def docker_group(folder: str, image: str, env: Mapping[str, Any] | None = None, **config: Any) -> Group:
    """A group answered by the echo agent in a container of ``image`` (see the ``echo_image`` fixture)."""
    environment = {key: str(value) for key, value in (env or {}).items()}
    return Group(folder=folder, container_config={"runtime": "docker", "image": image, "env": environment, **config})


def inputs(h: Harness, folder: str) -> list[dict[str, Any]]:
    """The input documents the echo agent of ``folder`` received (``ECHO_RECORD=RECORD``), one per run, in order."""
    path = h.data_dir / "groups" / folder / RECORD
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prompt_texts(document: dict[str, Any]) -> list[str]:
    """The texts of the ``<message>`` elements of a run's prompt."""
    return [html.unescape(text) for text in _MESSAGE.findall(document["prompt"])]


def gateway_answers(h: Harness, chat_jid: str) -> list[str]:
    """What the gateway itself said in ``chat_jid`` (command and builtin answers), in seq order."""
    return [row.content for row in h.outbound(chat_jid) if row.run_id is None]


@dataclass
class Harness:
    """A served gateway and ways to talk to it."""

    store: Store
    gateway: Gateway
    data_dir: Path
    instance: str
    sent: list[Message] = field(default_factory=list)

    async def send(self, chat_jid: str, text: str, **fields: Any) -> Message:
        """Store an inbound message and wake the loop, like an adapter or the web chat would."""
        fields.setdefault("sender", "user:1")
        fields.setdefault("origin", "test")
        result = await self.gateway.put_message(NewMessage(chat_jid=chat_jid, content=text, **fields))
        self.sent.append(result.message)
        return result.message

    def outbound(self, chat_jid: str | None = None) -> list[Message]:
        """Every outbound row (of ``chat_jid`` when given), in seq order."""
        rows = self.store.new_messages(0, limit=1_000_000)
        return [row for row in rows if row.direction == "out" and (chat_jid is None or row.chat_jid == chat_jid)]

    def replies(self, chat_jid: str | None = None) -> list[str]:
        """The texts of the agents' replies (outbound rows written by runs), in seq order."""
        return [row.content for row in self.outbound(chat_jid) if row.run_id is not None]

    def inbound(self, chat_jid: str | None = None) -> list[Message]:
        """Every inbound row (of ``chat_jid`` when given), in seq order."""
        rows = self.store.new_messages(0, limit=1_000_000)
        return [row for row in rows if row.direction == "in" and (chat_jid is None or row.chat_jid == chat_jid)]

    async def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll ``condition`` (a store read, in a thread) until true; fail naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(condition):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def settled(self, timeout: float = 60.0) -> None:
        """Wait until no inbound row waits for an agent, nothing runs or waits in the queue, and every finished run's
        container is removed (in the background, after its outcome)."""

        def quiet() -> bool:
            counts = self.gateway.queue.counts()
            busy = counts.running or counts.waiting or counts.backing_off or len(self.gateway.runner.removals)
            return not busy and self.store.counts()["inbound_new"] == 0

        await self.wait_for(quiet, "every message to be consumed", timeout)


@asynccontextmanager
async def running_gateway(
    data_dir: Path,
    groups: list[Group],
    *,
    instance: str = "test",
    docker_client: Any = None,
    max_concurrent: int = 5,
    retry: RetryPolicy = FAST_RETRY,
    poll_interval: float = 0.5,
    watch_interval: float = LoopConfig.watch_interval,
    tick_gap: float = LoopConfig.tick_gap,
    idle_timeout: float = 60.0,
    timeout: float = 120.0,
    store_url: str | None = None,
    runtimes: Mapping[str, Any] | None = None,
    impulse: ImpulseConfig | None = None,
    drain_timeout: float = 5.0,
    busy_timeout_ms: int = 30_000,
    onboarding: bool = False,
    daemons: Mapping[str, str] | None = None,
    max_replies: int = RunDefaults.max_replies,
    reply_flush: float = RunDefaults.reply_flush,
    poll_batch: int = 200,
    attachments: FetchPolicy | None = None,
    auth: AuthConfig | None = None,
    clock: Clock | None = None,
    timezone: str = "UTC",
    scheduler: SchedulerConfig | None = None,
    hooks: Hooks | None = None,
    session_watch: float = 60.0,
) -> AsyncIterator[Harness]:
    """Serve a gateway with ``groups`` registered (those not yet); on exit, stop it (drain) and close the store.

    Entering again with the same ``data_dir`` and ``instance`` is a restart of the same gated.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(store_url or f"sqlite:///{data_dir / 'kanmon.db'}", busy_timeout_ms=busy_timeout_ms)
    upgrade(store.engine)
    for group in groups:
        if store.get_group(group.folder) is None:
            store.add_group(group)
    if runtimes is None:
        runtimes = {"process": ProcessRuntime(data_dir / "runs", data_dir=data_dir)}
        if docker_client is not None:
            runtimes = {**runtimes, "docker": DockerRuntime(data_dir=data_dir, client=docker_client)}
    defaults = RunDefaults(
        instance=instance,
        data_dir=data_dir,
        runtime="process",
        idle_timeout=idle_timeout,
        timeout=timeout,
        stop_grace=2.0,
        max_replies=max_replies,
        reply_flush=reply_flush,
        timezone=timezone,
    )
    config = GatewayConfig(
        run=defaults,
        loop=LoopConfig(
            poll_interval=poll_interval,
            watch_interval=watch_interval,
            tick_gap=tick_gap,
            poll_batch=poll_batch,
            impulse=impulse or ImpulseConfig(),
            onboarding=onboarding,
            auth=auth or AuthConfig(),
            timezone=timezone,
        ),
        max_concurrent=max_concurrent,
        retry=retry,
        drain_timeout=drain_timeout,
        daemons=dict(daemons or {}),
        attachments=attachments or FetchPolicy(),
        scheduler=scheduler or SchedulerConfig(),
        session_watch=session_watch,
    )
    gateway = Gateway(store, runtimes, config, clock=clock, hooks=hooks)
    stopping = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stopping))
    started = asyncio.create_task(gateway.started.wait())
    await asyncio.wait([started, serving], return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    try:
        yield Harness(store, gateway, data_dir, instance)
    finally:
        stopping.set()
        await serving
        store.close()


def crashed_store(data_dir: Path, content: str, *, instance: str, settled: bool = False) -> int:
    """A store as a gated ``instance`` that died mid-run leaves it: group corp (the echo agent), one message of
    ``web:corp`` routed to corp (or settled since, ``settled``), and the run ``ghost-run`` still ``starting`` on it,
    nothing started; the message's seq."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        upgrade(store.engine)
        store.add_group(process_group("corp"))
        seq = store.put_message(NewMessage(chat_jid="web:corp", content=content, sender="u")).message.seq
        store.record_dispatch([Dispatch(seq, "done") if settled else Dispatch(seq, "new", "corp", "", None)], seq)
        store.start_run(
            Run(id="ghost-run", instance=instance, group_folder="corp", topic="", chat_jid="web:corp",
                runtime="process", status="starting", started_at=dt.datetime.now(dt.UTC), first_seq=seq,
                last_seq=seq, message_count=1)
        )  # fmt: skip
        return seq
    finally:
        store.close()
