"""Fetching an attachment's ``url``: http or https only, a size cap, a timeout, a few retries, and no way in to
addresses a sender should not reach through kanmon (server-side request forgery).

The address rule: a URL is fetched only when every address its host resolves to is a public one (Python's
``ipaddress`` ``is_global``), or falls in a network of ``attachments.allow_private``, or the URL's origin (scheme,
host, port) is a registered channel adapter's ``url``: adapters serve their platform's files (the Telegram adapter's
``/files/<id>``, the Matrix adapter's media) and usually run beside gated on loopback or a private network. Only
those trusted origins are sent ``Authorization: Bearer <channel secret>``, which adapters ask for. The request goes
to the address that was checked (the host name travels in ``Host`` and TLS's SNI), so a name that resolves to
another address a moment later (DNS rebinding) gains nothing. Redirects are not followed: a redirect is a failed
fetch, since its target would need the same check and adapters answer with the bytes.

A failure is :class:`FetchFailed` with a one-line reason for the prompt's note; timeouts, dropped connections,
408, 425, 429 and 5xx answers are tried again (tenacity, exponential backoff on the injected clock) up to
``attempts`` times; the other failures are final at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from kanmon.clock import Clock, SystemClock
from kanmon.gateway.errors import GatewayError

if TYPE_CHECKING:
    import httpx  # imported where used: gated starts without it (see kanmon.lazy)

__all__ = ["FetchFailed", "FetchPolicy", "Fetcher", "origin_of"]

_RETRIED_STATUS = frozenset({408, 425, 429})
_CHUNK = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class FetchPolicy:
    """How attachments are fetched: ``max_bytes`` per file, ``timeout`` seconds per try, ``attempts`` tries, and
    the private networks (CIDR strings like ``10.0.0.0/8``) that may be fetched from besides public addresses."""

    max_bytes: int = 16 << 20
    timeout: float = 30.0
    attempts: int = 3
    allow_private: tuple[str, ...] = ()
    retry_wait: float = 0.5  # seconds before the first retry; doubles, at most 8 s
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Raises ValueError for an ``allow_private`` entry that is not a network."""
        nets = tuple(ipaddress.ip_network(text, strict=False) for text in self.allow_private)
        object.__setattr__(self, "networks", nets)


class FetchFailed(GatewayError):
    """The file could not be fetched; ``str()`` is the reason, one line fit for the agent's prompt."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient


def origin_of(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL, the port filled in; None for anything else."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    return parsed.scheme, parsed.host.lower(), parsed.port or (443 if parsed.scheme == "https" else 80)


class Fetcher:
    """Fetches attachment URLs by the rules above. ``trusted`` gives the adapter URLs whose origins are trusted
    (read at each fetch: adapters register and leave); ``secret`` gives the channel secret sent to them."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        trusted: Callable[[], Iterable[str]] = tuple,
        secret: Callable[[], str] = str,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self._trusted = trusted
        self._secret = secret
        self._clock: Clock = clock or SystemClock()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def fetch(self, url: str) -> bytes:
        """The bytes at ``url`` (at most ``max_bytes``). Raises :class:`FetchFailed`."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.policy.attempts)),
            wait=wait_exponential(multiplier=self.policy.retry_wait, max=8.0),
            retry=retry_if_exception(_transient),
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(url)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the HTTP client (if one was opened)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _once(self, url: str) -> bytes:
        import httpx

        origin = origin_of(url)
        if origin is None:
            raise FetchFailed("not an http:// or https:// URL")
        _, host, port = origin
        trusted = origin in {origin_of(adapter) for adapter in self._trusted()}
        address = await self._address(host, port, trusted=trusted)
        headers = {"Host": httpx.URL(url).netloc.decode("ascii"), "Accept-Encoding": "identity"}
        secret = self._secret() if trusted else ""
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        target = httpx.URL(url).copy_with(host=address)
        request = self._http().build_request("GET", target, headers=headers, extensions={"sni_hostname": host})
        try:
            async with asyncio.timeout(self.policy.timeout):
                response = await self._http().send(request, stream=True)
                try:
                    return await self._body(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise FetchFailed(f"no complete answer within {self.policy.timeout:g}s", transient=True) from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"the request failed: {type(exc).__name__}", transient=True) from None

    async def _address(self, host: str, port: int, *, trusted: bool) -> str:
        """The address to connect to: the host's first, after every one it resolves to has passed the rule."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise FetchFailed(f"cannot resolve {host}: {exc.strerror or exc}", transient=True) from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise FetchFailed(f"cannot resolve {host}", transient=True)
        if not trusted:
            for address in addresses:
                if not (address.is_global or any(address in net for net in self.policy.networks)):
                    raise FetchFailed(
                        f"{host} is a private, loopback or link-local address ({address}); "
                        "only public addresses, registered adapters and attachments.allow_private are fetched"
                    )
        return str(addresses[0])

    async def _body(self, response: httpx.Response) -> bytes:
        status = response.status_code
        if status != 200:
            transient = status in _RETRIED_STATUS or status >= 500
            raise FetchFailed(f"the server answered HTTP {status}", transient=transient)
        cap = self.policy.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchFailed(f"larger than the limit of {cap} bytes")
        received = bytearray()
        async for chunk in response.aiter_raw(_CHUNK):
            received += chunk
            if len(received) > cap:
                raise FetchFailed(f"larger than the limit of {cap} bytes")
        return bytes(received)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(follow_redirects=False, transport=self._transport, trust_env=False)
        return self._client


def _transient(error: BaseException) -> bool:
    return isinstance(error, FetchFailed) and error.transient
