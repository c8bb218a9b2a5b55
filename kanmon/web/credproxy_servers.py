"""Where the credential proxy listens (issue 19): on each address agents reach, and nowhere else.

Process agents reach gated on loopback; containers on a Docker network reach it on that network's gateway address
(:meth:`~kanmon.container.Runtime.agent_host`). :class:`ProxyServers` starts one uvicorn server per address the
first time a run needs it, all on ``credential_proxy.port``, and stops them with gated. Binding only these
addresses (never ``0.0.0.0``) keeps the proxy off every other network the machine is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Mapping

import uvicorn
from starlette.types import ASGIApp

from kanmon.container import InvalidRunSpec
from kanmon.container.agent_secrets import SecretSource, read_secrets
from kanmon.gateway import Gateway
from kanmon.serving import EmbeddedServer, tcp_listener
from kanmon.web.credproxy import CredentialProxy, upstream_client

__all__ = ["ProxyServers", "serving_proxy"]

logger = logging.getLogger(__name__)


class ProxyServers:
    """The proxy's listeners, one per host address, on ``port`` (0: any free port each, for tests)."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self._app = app
        self._port = port
        self._lock = asyncio.Lock()
        self._servers: dict[str, tuple[EmbeddedServer, asyncio.Task[None], socket.socket]] = {}

    def port(self, host: str) -> int:
        """The port the listener on ``host`` has (the configured one, or the one picked for 0)."""
        return int(self._servers[host][2].getsockname()[1])

    async def ensure(self, host: str) -> None:
        """Listen on ``host`` if not yet. Raises :class:`InvalidRunSpec` when it cannot be bound (one line)."""
        async with self._lock:
            if host in self._servers:
                return
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                raise InvalidRunSpec(f"the credential proxy listens on IP addresses, not {host!r}") from None
            try:
                sock = tcp_listener(str(address), self._port, backlog=128)
            except OSError as exc:
                raise InvalidRunSpec(f"the credential proxy cannot listen on {host}:{self._port}: {exc}") from None
            # not access_log=False: uvicorn would switch off the one process-wide access logger, gated's own too;
            # the proxy's request lines follow log.access like every other (off unless asked for)
            config = uvicorn.Config(self._app, log_config=None, lifespan="off", ws="none")
            server = EmbeddedServer(config)
            task = asyncio.create_task(server.serve(sockets=[sock]), name=f"kanmon-credential-proxy-{host}")
            self._servers[host] = (server, task, sock)  # bound and listening: connections queue until it serves
            logger.info("credential proxy listening on %s:%d", host, sock.getsockname()[1])

    async def close(self) -> None:
        """Stop every listener and wait for them."""
        servers, self._servers = self._servers, {}
        for server, _, _ in servers.values():
            server.should_exit = True
        for _, task, sock in servers.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
            sock.close()


@contextlib.asynccontextmanager
async def serving_proxy(
    gateway: Gateway, secrets: Mapping[str, SecretSource], environ: Mapping[str, str] | None = None
) -> AsyncIterator[ProxyServers | None]:
    """Serve ``gateway``'s credential proxy while the block runs (None, and nothing served, without upstreams).

    Its listeners start as runs need them (``gateway.proxy_listen``); keys are read from ``secrets`` (the
    ``secrets:`` section) at each request, off the event loop.
    """
    grants = gateway.credentials
    if grants is None:
        yield None
        return

    async def secret(name: str) -> str:
        return (await asyncio.to_thread(read_secrets, [name], secrets, environ))[name]

    async with upstream_client() as client:
        proxy = CredentialProxy(
            grants.upstreams, grants.tokens, secret, client=client, metrics=gateway.metrics, observe=grants.observe
        )
        servers = ProxyServers(proxy.app(), gateway.config.credential_proxy.port)
        listen, gateway.proxy_listen = gateway.proxy_listen, servers.ensure
        try:
            yield servers
        finally:
            gateway.proxy_listen = listen
            await servers.close()
