"""The gateway as one object: the loop, the impulse gate, the queue, the runner and delivery, wired together.

gated builds a :class:`Gateway` from its settings and runtimes and awaits :meth:`Gateway.serve`; tests and
benchmarks build one directly. Anything that puts a message into the store from this process (the HTTP surface,
``gated demo``) does it through :meth:`Gateway.put_message`, which wakes the loop, so the message is routed within
milliseconds instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from kanmon import redaction
from kanmon.clock import Clock, SystemClock
from kanmon.gateway.adapter_files import AdapterFiles
from kanmon.gateway.adapters import AdapterDeliveryConfig, adapter_deliverer, daemon_deliverer
from kanmon.gateway.channels import store_read_channels
from kanmon.gateway.delivery import Deliverer, DeliveryWorker
from kanmon.gateway.dispatch import daemon_jid
from kanmon.gateway.feed import ChatFeed
from kanmon.gateway.fetch import Fetcher, FetchPolicy
from kanmon.gateway.gate import ImpulseGate
from kanmon.gateway.hooks import HookConfig, Hooks
from kanmon.gateway.inbox import Inbox
from kanmon.gateway.loop import LoopConfig, MessageLoop
from kanmon.gateway.media import MediaConfig, MediaStore
from kanmon.gateway.media_links import MediaLinks, load_key
from kanmon.gateway.metrics import MAX_FOLDER_LABELS, GatewayMetrics
from kanmon.gateway.readiness import readiness
from kanmon.gateway.registry import Registry
from kanmon.gateway.run_tokens import RunTokens
from kanmon.gateway.runner import LaneRunner, Runtimes
from kanmon.gateway.scheduler import SchedulerConfig, TaskScheduler
from kanmon.gateway.session_watch import ExpiryWatch
from kanmon.gateway.spec import RunDefaults
from kanmon.gateway.typing import Ping, TypingSignal, adapter_ping, typing_channel
from kanmon.gateway.upstreams import CredentialGrants, ProxyConfig
from kanmon.queue import GroupQueue, Lane, RetryPolicy
from kanmon.store import Message, NewMessage, PutResult, Store
from kanmon.store.aio import AsyncStore, GroupCommit

if TYPE_CHECKING:
    import httpx  # imported where used: gated starts without it (see kanmon.lazy)

__all__ = ["Gateway", "GatewayConfig"]

logger = logging.getLogger(__name__)

# How long a stopping gated waits for finished runs' containers to be removed (the rest: at the next start).
_REMOVALS_WAIT = 10.0


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """Everything the gateway is told: plain values, filled in by gated from its settings."""

    run: RunDefaults
    loop: LoopConfig = field(default_factory=LoopConfig)
    max_concurrent: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    drain_timeout: float = 30.0
    adapters: AdapterDeliveryConfig = field(default_factory=AdapterDeliveryConfig)
    #: Group folders with a ``folder`` label of their own in the metrics, the busiest first (``metrics.max_folders``).
    metric_folders: int = MAX_FOLDER_LABELS
    #: ``daemon:<name>`` route targets: name -> the URL each message routed there is POSTed to (SPEC §6.4).
    daemons: Mapping[str, str] = field(default_factory=dict)
    #: Below this many free bytes beside an SQLite store /readyz says not ready (0: never).
    min_free_bytes: int = 64 << 20
    #: How attachments are fetched into a group's inbox at run start (size cap, timeout, tries, private networks).
    attachments: FetchPolicy = field(default_factory=FetchPolicy)
    #: Files agents send: size cap, inline threshold, download links (``media.*``).
    media: MediaConfig = field(default_factory=MediaConfig)
    #: Scheduled tasks (``scheduler.*`` settings; issue 15).
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    #: APIs agents reach through gated's credential proxy (``credential_proxy.*``; issue 19).
    credential_proxy: ProxyConfig = field(default_factory=ProxyConfig)
    #: Lifecycle hook plugins to load (``hooks.*``; issue 16 item 6).
    hooks: HookConfig = field(default_factory=HookConfig)
    #: Seconds between the session expiry watcher's looks (``session_watch_interval``; issue 16 item 2).
    session_watch: float = 60.0


class Gateway:
    """One gated's message handling, from stored row to delivered reply."""

    def __init__(
        self,
        store: Store,
        runtimes: Runtimes,
        config: GatewayConfig,
        *,
        deliverers: Sequence[Deliverer] = (),
        clock: Clock | None = None,
        metrics: GatewayMetrics | None = None,
        db: AsyncStore | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.store = store
        self.runtimes = runtimes
        self.config = config
        # never in a log line (SPEC §14): the secret sent to adapters, daemons' passwords (agents' secrets are
        # remembered as each run start reads them: kanmon.container.agent_secrets)
        daemon_passwords = [unquote(urlsplit(url).password or "") for url in config.daemons.values()]
        for secret in (config.adapters.channel_secret, *daemon_passwords):
            redaction.remember(secret)
        self.clock: Clock = clock or SystemClock()
        self.db = db or AsyncStore(store, clock=self.clock)
        #: :meth:`put_message`'s writes: puts made together (several adapters, web pages) share one transaction.
        self.puts = GroupCommit(self.db, store.put_messages, name="puts", retrying=False)
        self.metrics = metrics or GatewayMetrics(
            delivery_deadline=config.adapters.deadline, max_folders=config.metric_folders
        )
        #: Trusted local plugins told of lifecycle events (:mod:`kanmon.gateway.hooks`); loading may raise PluginError.
        self.hooks = hooks or Hooks.load(config.hooks)
        self.hooks.count = lambda name, result: self.metrics.hook_calls.labels(hook=name, result=result).inc()
        #: Why this gated holds back (``None`` while it may route and run): see :meth:`fence`.
        self.fenced: str | None = None
        #: False until :meth:`serve` starts, and again once it stops: the HTTP surface takes no messages meanwhile.
        self.active = False
        #: Set once :meth:`serve` has reclaimed what a previous gated left and takes messages.
        self.started = asyncio.Event()
        #: Asked by ``/readyz`` for a reason this gated does not serve yet (gated's lock guard sets it).
        self.waiting: Callable[[], str | None] = lambda: None
        self.gate, self.feed = ImpulseGate(), ChatFeed()
        self._key_prefix = config.run.instance  # the store's, once serve() has read it (Store.idempotency_prefix)
        self.registry = Registry(store)
        self.fetcher = Fetcher(
            config.attachments,
            trusted=lambda: [channel.url for channel in self.registry.channels],
            secret=lambda: self.adapter_config.channel_secret,
            clock=self.clock,
        )
        media_root, groups = config.run.data_dir / "media", config.run.data_dir / "groups"
        #: The files agents sent, content-addressed under ``<data_dir>/media`` (:mod:`kanmon.gateway.media`).
        self.media = MediaStore(media_root, max_bytes=config.media.max_bytes)
        #: Signed download links to them for adapters; gated sets ``base_url`` once it listens.
        self.media_links = MediaLinks(
            media_root / "url.key", ttl=config.media.url_ttl, clock=self.clock, base_url=config.media.public_url
        )
        #: which chat topics a run works on now; pings adapters that take typing (kanmon.gateway.typing)
        self.typing = TypingSignal(
            clock=self.clock,
            interval=config.adapters.typing_interval,
            pinger=self._typing_ping,
            on_change=self.feed.signal,
        )
        #: Where the credential proxy must listen for a run (gated sets it when it serves the proxy; issue 19).
        self.proxy_listen: Callable[[str], Awaitable[None]] = _nowhere
        proxy = config.credential_proxy
        key_path = config.run.data_dir / "credential_proxy.key"
        self.credentials = (
            CredentialGrants(
                proxy.upstreams,
                RunTokens(load_key(key_path), is_live=lambda run_id: run_id in self.runner.live_runs()),
                port=proxy.port,
                listen=lambda host: self.proxy_listen(host),
                agent_host=proxy.agent_host,
            )
            if proxy.upstreams
            else None
        )
        self.runner = LaneRunner(
            self.db,
            runtimes,
            config.run,
            registry=self.registry,
            metrics=self.metrics,
            gate=self.gate,
            is_rerun=lambda lane: self.queue.rerun(lane),
            on_stored=self._stored,
            on_ended=lambda jid, answered: self.loop.run_ended(jid, answered),  # a new turn: no settle (settle.py)
            requeue=lambda lane: self.queue.enqueue(lane),
            clock=self.clock,
            inbox=Inbox(self.fetcher, config.run.data_dir),
            collect=lambda folder, refs: self.media.collect_all(groups / folder, refs, root=groups),
            typing=self.typing,
            credentials=self.credentials,
            on_tasks=lambda: self.scheduler.wake(),  # the scheduler is made below
            hooks=self.hooks,
        )
        self.queue = GroupQueue(
            self.runner.run_lane,
            on_dead_letter=self.runner.dead_letter,
            stop_run=self.runner.stop,
            max_concurrent=config.max_concurrent,
            retry=config.retry,
            clock=self.clock,
        )
        self.loop = MessageLoop(
            self.db,
            self.queue,
            config=config.loop,
            gate=self.gate,
            feed=self.feed,
            metrics=self.metrics,
            registry=self.registry,
            clock=self.clock,
            on_stored=self._stored,
            hooks=self.hooks,
        )
        self.scheduler = TaskScheduler(
            self.db, self.registry, config.scheduler, clock=self.clock, metrics=self.metrics, on_stored=self.loop.wake,
            hooks=self.hooks,
        )  # fmt: skip
        #: offers the queue the lanes whose sessions expired or wait for a memory flush (issue 16 item 2)
        self.expiry = ExpiryWatch(
            self.runner.resets, self.registry, self.queue.enqueue, clock=self.clock, interval=config.session_watch
        )
        self._fixed_deliverers: list[Deliverer] = [*store_read_channels(), *deliverers]
        self.adapter_config = config.adapters
        self._adapter_client: httpx.AsyncClient | None = None
        self.delivery = DeliveryWorker(
            self.db,
            self.deliverers,
            metrics=self.metrics,
            interval=config.loop.poll_interval,
            clock=self.clock,
            policy=config.adapters.policy(),
            hooks=self.hooks,
        )
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """Something was stored: route it and deliver it now."""
        self.loop.wake()
        self.delivery.wake()

    def _stored(self, rows: list[Message]) -> None:
        """A run stored rows: deliverers send the pending ones now, and the loop reads them now when one waits to be
        routed, or a live page or OpenAI stream listens to its chat, or a plugin to ``message_stored`` (both hear of
        rows from the loop). Otherwise its next tick reads them: a tick per run end costs three statements and a
        write for nothing (issue 13)."""
        if not rows:
            return
        listened = self.hooks.observed("message_stored")
        if listened or any(row.direction == "in" or self.feed.subscribers(row.chat_jid) for row in rows):
            self.loop.wake()
        pending = {row.chat_jid for row in rows if row.delivery_status == "pending"}
        if pending:
            self.delivery.wake(pending)
        for row in rows:
            if row.direction == "out" and row.delivery_status == "sent":  # delivered by being stored (web:, local:)
                self.metrics.deliveries.labels(channel=row.chat_jid.partition(":")[0], result="sent").inc()
                self.metrics.delivery_lag_seconds.observe(0.0)

    def fence(self, reason: str) -> None:
        """Stop routing, starting runs and delivering at once (the store lock is lost); running runs go on."""
        self.fenced = reason
        self.loop.fenced = True
        self.delivery.fenced = True
        self.scheduler.fenced = True
        self.expiry.fenced = True
        self.queue.pause()

    def unfence(self) -> None:
        """Carry on after :meth:`fence` (the lock was taken back and nobody held the store meanwhile)."""
        self.fenced = None
        self.loop.fenced = False
        self.delivery.fenced = False
        self.scheduler.fenced = False
        self.expiry.fenced = False
        self.queue.resume()
        self.wake()

    def configure_adapters(self, config: AdapterDeliveryConfig) -> None:
        """Change how channel adapters and daemons are reached (secret, timeouts, backoff, deadline) from the next
        pass on."""
        self.adapter_config = config
        self.delivery.policy = config.policy()
        self.typing.interval = config.typing_interval

    async def deliverers(self) -> list[Deliverer]:
        """The built-in channels, an HTTP deliverer per configured daemon and per adapter registered (as last read)."""
        channels = self.registry.channels
        if not channels and not self.config.daemons:
            return list(self._fixed_deliverers)
        client, config, instance, clock = self._client(), self.adapter_config, self._key_prefix, self.clock
        find = self._original
        daemons = [
            daemon_deliverer(
                name, url, client, config, instance=instance, find_original=find, outbox=daemon_jid(name), clock=clock
            )
            for name, url in sorted(self.config.daemons.items())
        ]
        files = AdapterFiles(self.media, self.media_links, inline_bytes=self.config.media.inline_bytes)
        adapters = [adapter_deliverer(c, client, config, instance=instance, files=files, clock=clock) for c in channels]
        return [*self._fixed_deliverers, *daemons, *adapters]

    def _client(self) -> httpx.AsyncClient:
        """The one HTTP client for adapters and daemons (closed when :meth:`serve` ends)."""
        if self._adapter_client is None:
            import httpx

            self._adapter_client = httpx.AsyncClient(follow_redirects=False)
        return self._adapter_client

    def _typing_ping(self, chat_jid: str) -> Ping | None:
        """The typing ping of the adapter that owns ``chat_jid``, when it declared ``typing: true``."""
        channel = typing_channel(self.registry.channels, chat_jid)
        if channel is None:
            return None
        config = self.adapter_config
        timeout = min(config.timeout, self.typing.interval)
        return adapter_ping(
            channel,
            self._client(),
            secret=config.channel_secret,
            timeout=timeout,
            requests=self.metrics.typing_requests,
        )

    async def _original(self, row: Message) -> Message | None:
        """The stored message a daemon outbox row carries (``reply_to_id`` in the chat ``forwarded_from``)."""
        if row.forwarded_from is None or row.reply_to_id is None:
            return None
        found: Message | None = await self.db.retrying(self.store.get_message, row.forwarded_from, row.reply_to_id)
        return found

    async def readiness(self) -> list[str]:
        """Why this gated cannot do its work right now (``/readyz``); empty when it can."""
        return await readiness(self)

    async def put_message(self, new: NewMessage) -> PutResult:
        """Store ``new`` (idempotent on its id) and wake the loop; raises what :meth:`Store.put_message` raises, and
        StoreUnavailable at once while the database cannot be reached. Puts made meanwhile go in one transaction."""
        result = await self.puts((new, self.clock.now()))
        if result.created:
            self.loop.wake()
        return result

    async def serve(self, stopping: asyncio.Event | None = None) -> list[Lane]:
        """Run until ``stopping`` is set (or :meth:`stop`), then drain; returns the lanes left running (detached)."""
        stopping = stopping or self._stopping
        await self.db.retrying(self.registry.refresh)
        self._key_prefix = await self.db.retrying(self.store.idempotency_prefix, self.config.run.instance)
        self.metrics.folder.seed(await self.db.retrying(self.store.busiest_folders, self.config.metric_folders))
        # before the first poll: a reclaimed run holds its lane, so its batch cannot start a second time
        for lane in await self.runner.reclaim():
            self.queue.enqueue(lane)
        await self._sweep_media()
        self.active = True
        self.started.set()
        workers = [
            asyncio.create_task(self.loop.run(stopping), name="kanmon-loop"),
            asyncio.create_task(self.delivery.run(stopping), name="kanmon-delivery"),
            asyncio.create_task(self.scheduler.run(stopping), name="kanmon-scheduler"),
            asyncio.create_task(self.expiry.run(stopping), name="kanmon-expiry"),
        ]
        try:
            await stopping.wait()
        finally:
            self.active = False
            drain = 0.0 if self.fenced is not None else self.config.drain_timeout
            leftovers = await self.queue.shutdown(drain, force=self.fenced is not None)
            stopping.set()
            removed = asyncio.wait_for(self.runner.removals.wait(), _REMOVALS_WAIT)
            await asyncio.gather(*workers, removed, return_exceptions=True)
            # replies stored during the drain still reach their channels
            try:
                if self.fenced is None:
                    await self.delivery.deliver_due()
            finally:
                await self.typing.close()
                self.feed.close()
                await self.fetcher.aclose()
                self.media.close()
                self.hooks.close()
                if self._adapter_client is not None:
                    await self._adapter_client.aclose()
                    self._adapter_client = None
        return leftovers

    async def _sweep_media(self) -> None:
        """Remove what a crash left half-copied in the media store's spool (an hour old at least)."""
        now = self.clock.now().timestamp()
        try:
            removed = await self.media.run(functools.partial(self.media.sweep, now=now, older_than=3600.0))
        except OSError as exc:
            logger.warning("the media store's spool could not be swept: %s", exc)
            return
        if removed:
            logger.info("removed %d half-copied files from the media store's spool", removed)

    def stop(self) -> None:
        """Ask :meth:`serve` (started without its own event) to stop: no new runs, then drain."""
        self._stopping.set()

    async def force_stop(self) -> None:
        """End the drain now (a second SIGINT): running runs are detached, their containers left running."""
        await self.queue.shutdown(0.0, force=True)


async def _nowhere(host: str) -> None:
    """No credential proxy is served (a gateway without gated's HTTP side): runs get its URL all the same."""
