"""``gated run``: build the gateway from the settings, serve HTTP beside it, and stop cleanly on a signal.

The first SIGINT or SIGTERM stops polling and lets running runs finish for ``drain_timeout``; a second one ends the
wait at once. Either way runs still going are detached, not killed: their containers keep running (SPEC §14).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from kanmon import redaction
from kanmon.container import Limits, ProcessRuntime
from kanmon.container.agent_secrets import MissingSecret, read_secret
from kanmon.container.docker import DockerRuntime
from kanmon.gated.auth_commands import auth_config
from kanmon.gated.guard import StoreGuard
from kanmon.gated.logs import log_format
from kanmon.gated.settings import Settings, browser_url
from kanmon.gateway import Gateway, GatewayConfig, LoopConfig, RunDefaults
from kanmon.gateway.adapters import AdapterDeliveryConfig
from kanmon.gateway.fetch import FetchPolicy
from kanmon.gateway.media import MediaConfig
from kanmon.gateway.privacy import MIN_SALT_CHARS, Privacy
from kanmon.gateway.runner import Runtimes
from kanmon.gateway.scheduler import SchedulerConfig
from kanmon.gateway.session_policy import mode_of
from kanmon.gateway.upstreams import ProxyConfig
from kanmon.queue import RetryPolicy
from kanmon.serving import EmbeddedServer
from kanmon.stopping import unless_stopped
from kanmon.store import Store, StoreError, StoreFenced
from kanmon.store.lock import StoreLock
from kanmon.web import WebConfig, create_app
from kanmon.web.credproxy_servers import serving_proxy

__all__ = ["Daemon", "gateway_config", "make_runtimes", "privacy", "web_config"]


logger = logging.getLogger(__name__)


def gateway_config(settings: Settings) -> GatewayConfig:
    """The gateway's plain-value configuration, from gated's settings."""
    runtime, docker = settings.runtime, settings.runtime.docker
    defaults = RunDefaults(
        instance=settings.instance,
        data_dir=settings.data_dir,
        runtime=runtime.default,
        image=docker.image,
        network=docker.network,
        limits=Limits(memory_bytes=docker.memory_bytes, cpus=docker.cpus, pids=docker.pids_limit),
        user=docker.user,
        idle_timeout=runtime.idle_timeout,
        timeout=runtime.timeout,
        stop_grace=runtime.stop_grace,
        max_replies=runtime.max_replies,
        assistant_name=settings.assistant_name,
        session_idle_expiry=settings.gateway.session_idle_expiry,
        session_reset=mode_of(settings.gateway.session_reset, "idle"),
        session_reset_hour=settings.gateway.session_reset_hour,
        flush_prompt=settings.gateway.session_flush_prompt,
        flush_timeout=settings.gateway.session_flush_timeout,
        secrets=settings.secrets,
        timezone=settings.scheduler.timezone,
        privacy=privacy(settings),
    )
    queue = settings.queue
    return GatewayConfig(
        run=defaults,
        loop=LoopConfig(
            poll_interval=settings.gateway.poll_interval,
            watch_interval=settings.gateway.watch_interval,
            poll_batch=settings.gateway.poll_batch,
            bot_names=frozenset({settings.assistant_name.lower()}),
            impulse=settings.impulse.config(),
            onboarding=settings.gateway.onboarding,
            auth=auth_config(settings),
            timezone=settings.scheduler.timezone,
        ),
        max_concurrent=queue.max_concurrent,
        retry=RetryPolicy(max_attempts=queue.max_attempts, base_delay=queue.retry_base_delay),
        drain_timeout=settings.gateway.drain_timeout,
        metric_folders=settings.metrics.max_folders,
        min_free_bytes=settings.store.min_free_bytes,
        adapters=AdapterDeliveryConfig(
            channel_secret=settings.http.channel_secret,
            timeout=settings.delivery.request_timeout,
            retry_base=settings.delivery.retry_base_delay,
            deadline=settings.delivery.deadline,
            chats_at_once=settings.delivery.chats_at_once,
            typing_interval=settings.delivery.typing_interval,
        ),
        daemons=dict(settings.daemons),
        session_watch=settings.gateway.session_watch_interval,
        attachments=FetchPolicy(
            max_bytes=settings.attachments.max_bytes,
            timeout=settings.attachments.fetch_timeout,
            attempts=settings.attachments.fetch_attempts,
            allow_private=settings.attachments.allow_private,
        ),
        media=MediaConfig(
            max_bytes=settings.media.max_bytes,
            inline_bytes=settings.media.inline_bytes,
            url_ttl=settings.media.url_ttl,
            public_url=settings.media.public_url,
        ),
        scheduler=SchedulerConfig(
            interval=settings.scheduler.interval,
            grace=settings.scheduler.grace,
            catch_up=settings.scheduler.catch_up,
        ),
        credential_proxy=ProxyConfig(
            upstreams=settings.credential_proxy.upstreams,
            port=settings.credential_proxy.port,
            agent_host=settings.credential_proxy.agent_host,
        ),
        hooks=settings.hooks.config(),
    )


def privacy(settings: Settings, environ: Mapping[str, str] | None = None) -> Privacy | None:
    """The PII redaction of prompts (``privacy.*``), its salt read now from its secret (remembered for the log
    redaction, never stored); None when no platform is redacted. Raises
    :class:`~kanmon.container.agent_secrets.MissingSecret` (exit 2) when the salt cannot be read or is too short."""
    config = settings.privacy
    if not config.redact:
        return None
    name = config.salt
    salt = read_secret(name, settings.secrets[name], os.environ if environ is None else environ)
    redaction.remember(salt)
    if len(salt) < MIN_SALT_CHARS:
        raise MissingSecret(name, f"the salt must be at least {MIN_SALT_CHARS} characters (openssl rand -hex 32)")
    return Privacy(frozenset(config.redact), salt, names=config.redact_names)


def web_config(settings: Settings) -> WebConfig:
    """The HTTP surface's plain-value configuration, from gated's settings."""
    http = settings.http
    return WebConfig(
        channel_secret=http.channel_secret,
        max_body_bytes=http.max_body_bytes,
        trusted_sender_header=http.trusted_sender_header,
        openai_timeout=http.openai_timeout,
        max_upload_bytes=settings.attachments.max_bytes,
    )


def make_runtimes(settings: Settings) -> Runtimes:
    """Both runtimes; the Docker one contacts the engine only when a group first runs on it."""
    cap, tags = settings.runtime.output_cap_bytes, settings.runtime.reasoning_tags
    return {
        "process": ProcessRuntime(
            settings.data_dir / "runs", data_dir=settings.data_dir, output_limit=cap, reasoning_tags=tags
        ),
        "docker": DockerRuntime(
            data_dir=settings.data_dir,
            # gated in a container: the engine bind-mounts group folders from the host's path to the data dir
            host_data_dir=settings.host_data_path if settings.host_data_dir else None,
            mount_allowlist=settings.runtime.mount_allowlist,
            output_limit=cap,
            reasoning_tags=tags,
        ),
    }


@dataclass
class Daemon:
    """One ``gated run``: the HTTP server, the store lock, the gateway, and the signal handling around them.

    HTTP comes up first, so ``/healthz`` answers and ``/readyz`` says why not while gated waits for its database (an
    outage at start is waited out, not a crash: SPEC §14) or, with ``standby``, for the store lock. Then, under the
    lock, ``prepare`` runs (migrations, the demo's group) and the gateway serves until a signal, or until another
    gated takes the store over (:class:`~kanmon.gated.guard.Overtaken`, exit 3).
    """

    settings: Settings
    store: Store
    listener: socket.socket | None = None  # from listen(), bound and listening; None: no HTTP
    runtimes: Runtimes | None = None
    on_ready: Callable[[Daemon], None] | None = None
    #: Blocking set-up done under the lock before serving (migrate the schema, …); run on the store's threads.
    prepare: Callable[[], object] | None = None
    standby: bool = False
    gateway: Gateway = field(init=False)
    app: FastAPI = field(init=False)
    guard: StoreGuard = field(init=False)
    _server: uvicorn.Server | None = field(default=None, init=False)
    _signals: int = field(default=0, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    #: The runtimes made here (none when the caller gave its own): closed when the daemon stops.
    own_runtimes: Runtimes = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.runtimes is None:
            self.own_runtimes = make_runtimes(self.settings)
        self.gateway = Gateway(self.store, self.runtimes or self.own_runtimes, gateway_config(self.settings))
        self.app = create_app(self.gateway, web_config(self.settings))
        lock = StoreLock(self.store.engine, instance=self.settings.instance)
        self.guard = StoreGuard(
            self.gateway.db,
            lock,
            check_interval=self.settings.store.lock_check_interval,
            standby=self.standby,
            clock=self.gateway.clock,
        )
        self.gateway.waiting = lambda: self.guard.waiting
        if not self.settings.media.public_url and self.reachable_url is not None:
            self.gateway.media_links.base_url = self.reachable_url  # adapters download agents' files from here

    @property
    def http_url(self) -> str | None:
        """``http://host:port`` of the listener (the real port when 0 was asked for); None without HTTP."""
        if self.listener is None:
            return None
        host, port = self.listener.getsockname()[:2]
        return f"http://{_url_host(host)}:{port}"

    @property
    def reachable_url(self) -> str | None:
        """:attr:`http_url` as a browser or an adapter on this machine reaches it (:func:`browser_url`: a wildcard
        address as the loopback of its family). None without HTTP."""
        if self.listener is None:
            return None
        host, port = self.listener.getsockname()[:2]
        return browser_url(host, port)

    async def run(self) -> None:
        """Serve until a signal; return once drained. Raises StoreLocked (exit 3) when the store is or becomes
        another gated's."""
        stopping = asyncio.Event()
        self._install_signals(stopping)
        stopping_http_writes = asyncio.create_task(self._refuse_writes_when(stopping))
        http_task = self._serve_http()
        served = False
        try:
            if await unless_stopped(self._activate(), stopping):
                served = True
                async with serving_proxy(self.gateway, self.settings.secrets):  # issue 19: only with upstreams
                    await self._serve(stopping)
        finally:
            stopping.set()
            await stopping_http_writes
            if self._server is not None and http_task is not None:
                self._server.should_exit = True
                await http_task
            if served:
                await self._record_served_url("")
            self.guard.release()
            self.gateway.db.close()
            for runtime in self.own_runtimes.values():
                runtime.close()  # runs left running keep running: the next gated reclaims them
            if served:
                logger.info("gated stopped")

    def _serve_http(self) -> asyncio.Task[None] | None:
        if self.listener is None:
            return None
        host, port = self.listener.getsockname()[:2]
        # no WebSocket protocol: gated serves none, and loading one costs memory for nothing
        config = uvicorn.Config(self.app, host=host, port=port, log_config=None, lifespan="off", ws="none")
        self._server = EmbeddedServer(config)
        return asyncio.create_task(self._server.serve(sockets=[self.listener]), name="kanmon-http")

    async def _activate(self) -> None:
        """Take the lock (waiting for the database, or as a standby for the holder), prepare, fence the store."""
        await self.guard.take()
        if self.prepare is not None:
            await self.gateway.db.retrying(self.prepare)
        await self.guard.fence_writes()

    async def _record_served_url(self, url: str) -> None:
        """Tell commands of other processes where this gated serves HTTP (``''``: nowhere) for the links they print
        (``gated group web-token``); a gated that lost the store is fenced out of it. At most a couple of seconds:
        without it, those links name ``http.listen`` instead."""
        try:
            await asyncio.wait_for(self.gateway.db.once(self.store.set_served_url, url), 2.0)
        except StoreFenced:
            logger.debug("the store is another gated's: its HTTP address is its own to record")
        except (StoreError, TimeoutError) as exc:
            logger.warning("could not record the HTTP address for gated's commands (%s)", str(exc) or "timed out")

    async def _serve(self, stopping: asyncio.Event) -> None:
        await self._record_served_url(self.reachable_url or "")
        exposed = await self.gateway.db.once(self.store.exposed_files)
        if exposed:
            logger.warning("other local users may read the store: %s; chmod go-rwx them", ", ".join(exposed))
        logger.info(
            "gated running: instance=%s store=%s http=%s",
            self.settings.instance,
            self.store.engine.url.render_as_string(hide_password=True),
            self.http_url or "off",
        )
        serving = asyncio.create_task(self.gateway.serve(stopping), name="kanmon-gateway")
        keeping = asyncio.create_task(self.guard.keep(self.gateway, stopping), name="kanmon-lock-guard")
        started = asyncio.create_task(self.gateway.started.wait())
        await asyncio.wait([started, serving], return_when=asyncio.FIRST_COMPLETED)  # reclaim comes first
        started.cancel()
        if self.on_ready is not None:
            self.on_ready(self)
        await asyncio.wait([serving, keeping], return_when=asyncio.FIRST_COMPLETED)
        if keeping.done() and keeping.exception() is not None:
            logger.error("%s", keeping.exception())
            stopping.set()  # fenced already: the drain leaves every run to the gated that holds the store now
        leftovers = await serving
        await keeping  # raises Overtaken (exit 3) if that is why we stop
        if leftovers:
            logger.warning("stopped with %d runs still going; their containers keep running", len(leftovers))

    async def _refuse_writes_when(self, stopping: asyncio.Event) -> None:
        # the drain begins: health, metrics and the event streams stay up, new messages are refused with 503
        await stopping.wait()
        self.app.state.draining = True

    def _install_signals(self, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, stopping, signum)

    def _on_signal(self, stopping: asyncio.Event, signum: int) -> None:
        # Act first, speak after: whatever reads our stderr may be gone (`gated run 2>&1 | tee log`, then Ctrl-C),
        # and a failing write must never cost the stop itself.
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            stopping.set()
            drain = self.gateway.config.drain_timeout
            again = "Ctrl-C again" if signum == signal.SIGINT else f"{name} again"  # SIGTERM comes from a tool
            _say(f"\nstopping (up to {drain:.0f}s for running agents; {again} stops now)")
            logger.info("%s: stopping; running runs get %.0fs to finish (again to stop waiting)", name, drain)
        else:
            task = asyncio.create_task(self.gateway.force_stop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            logger.warning("%s again: not waiting for running runs; they are left running", name)


def _say(text: str) -> None:
    """A line for the person at the terminal, if anyone still reads standard error; none when the log is JSON lines
    (a machine reads them, and the log line beside it says the same)."""
    if log_format() == "json":
        return
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
