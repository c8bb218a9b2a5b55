"""The credential-injecting proxy (issue 19): an agent calls its API through gated, which adds the real key.

A group that opts in to an upstream (``anthropic``: ``https://api.anthropic.com``, key in ``x-api-key``) gets, in
its runs' environment, the upstream's base-URL variable pointing here (``ANTHROPIC_BASE_URL=http://<gated>:<port>
/anthropic``) and a placeholder key (``ANTHROPIC_API_KEY=kanmon-run-…``): a token valid for that run and upstream
only (:class:`~kanmon.gateway.run_tokens.RunTokens`). Each request:

1. ``/<upstream>/<path>?<query>`` names a configured upstream (else 404) and carries a live token for it, in
   ``x-api-key`` or ``Authorization: Bearer`` (else 401, and nothing reaches the upstream);
2. goes to the upstream's base URL joined with ``<path>``: only that host is ever contacted, so this is no open
   proxy; the agent's own credentials and hop-by-hop headers are dropped, the real key is added in the configured
   header, and ``Accept-Encoding: identity`` is asked for so the answer can be scrubbed;
3. streams both ways (a server-sent-event completion arrives chunk by chunk, never buffered whole), with the real
   key masked (``*`` × its length, so ``Content-Length`` still holds) wherever the upstream echoes it, even across
   chunk boundaries: only a chunk's tail that could begin the key is held back until the next chunk decides.

The key is read from its secret at each request (a rotated file takes effect at once) and appears nowhere else: not
in logs (the proxy logs upstream, path, status and run only), not in errors, not in the store.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.proxy_usage import TokenCounts, UsageReader
from kanmon.gateway.run_tokens import Grant, RunTokens
from kanmon.gateway.upstreams import Upstream

if TYPE_CHECKING:
    import httpx  # imported where used: gated starts without it (see kanmon.lazy)

__all__ = ["CredentialProxy", "KeyScrubber", "ProxyUsage", "upstream_client"]

logger = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific fields, and what the proxy sets itself
_DROPPED_REQUEST = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "authorization", "x-api-key", "accept-encoding", "proxy-authorization", "cookie"}
)  # fmt: skip
_DROPPED_RESPONSE = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "set-cookie"}
)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
KEEP_RUNS = 1000  # runs whose figures :attr:`CredentialProxy.usage` keeps


@dataclass
class ProxyUsage:
    """What one run sent through the proxy: requests, bytes each way (bodies up, answers down), and the tokens the
    answers said they cost (:mod:`kanmon.web.proxy_usage`)."""

    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    tokens: TokenCounts = field(default_factory=TokenCounts)


class KeyScrubber:
    """Masks every occurrence of ``secret`` in a byte stream fed chunk by chunk, holding back no more than needed.

    Only the longest tail of what was fed that could be the start of ``secret`` waits for the next chunk; a tail
    that cannot is passed on at once, so a stream that never echoes the key is not delayed at all.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._mask = b"*" * len(secret)
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` (after what was held) that can go on now, masked."""
        if not self._secret:
            return chunk
        data = (self._held + chunk).replace(self._secret, self._mask)
        keep = self._partial(data)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]

    def finish(self) -> bytes:
        """What was still held at the end of the stream (it never became the key)."""
        held, self._held = self._held, b""
        return held

    def _partial(self, data: bytes) -> int:
        for size in range(min(len(data), len(self._secret) - 1), 0, -1):
            if data.endswith(self._secret[:size]):
                return size
        return 0


def _tokens_of(counts: TokenCounts) -> dict[str, int]:
    return {kind: getattr(counts, kind) for kind in ("input", "output", "cache_read", "cache_write")}


def _token(request: Request) -> str:
    """The run token an SDK presented: ``x-api-key`` (Anthropic) or ``Authorization: Bearer`` (OpenAI)."""
    key = request.headers.get("x-api-key", "")
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _target(upstream: Upstream, request: Request, rest: str) -> httpx.URL:
    """The upstream URL of this request: its base URL's path, then ``rest`` (raw, as the agent encoded it)."""
    import httpx

    base = httpx.URL(upstream.base_url)
    path = base.raw_path.split(b"?")[0].rstrip(b"/") + b"/" + rest.encode()
    query = request.scope.get("query_string", b"")
    return base.copy_with(raw_path=path + (b"?" + query if query else b""))


class CredentialProxy:
    """The proxy's request handling; :meth:`app` is the ASGI app to serve on the addresses agents reach, only there.

    ``secret_value(name)`` reads a secret's current value (off the event loop) or raises when it cannot: the
    request then gets 502, naming the secret, never its value. ``client`` makes the upstream requests (its owner
    closes it; make it with :func:`upstream_client`). :attr:`usage` (run id → :class:`ProxyUsage`) fills as
    requests pass.
    """

    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        tokens: RunTokens,
        secret_value: Callable[[str], Awaitable[str]],
        *,
        client: httpx.AsyncClient,
        metrics: GatewayMetrics | None = None,
        observe: Callable[[str, TokenCounts], None] = lambda run_id, counts: None,
    ) -> None:
        self._observe = observe
        self._metrics = metrics or GatewayMetrics()
        self._upstreams = upstreams
        self._tokens = tokens
        self._secret_value = secret_value
        self._http = client
        #: What the latest runs sent through (at most :data:`KEEP_RUNS` of them, oldest dropped first).
        self.usage: OrderedDict[str, ProxyUsage] = OrderedDict()

    def app(self) -> Starlette:
        """``/<upstream>`` and ``/<upstream>/<path>``, any method."""
        return Starlette(
            routes=[
                Route("/{upstream}", self.handle, methods=_METHODS),
                Route("/{upstream}/{path:path}", self.handle, methods=_METHODS),
            ]
        )

    async def handle(self, request: Request) -> Response:
        """Check the request's run token and path, then forward it with the real key (module docstring)."""
        name, rest = request.path_params["upstream"], _raw_rest(request)
        upstream = self._upstreams.get(name)
        if upstream is None:
            return JSONResponse({"error": f"no upstream {name!r}"}, status_code=404)
        presented = _token(request)
        grant = self._tokens.check(presented, name) if presented else None
        if grant is None:
            self._metrics.proxy_requests.labels(upstream=name, outcome="refused").inc()
            logger.info("credential proxy: %s %s/%s refused: no live run token for it", request.method, name, rest)
            return JSONResponse({"error": "a live run token for this upstream is required"}, status_code=401)
        path = request.path_params.get("path", "")  # decoded: %2e%2e and %5C are what the upstream will read
        if ".." in path.split("/") or "\\" in path or "\\" in rest:
            return JSONResponse({"error": "the path may not climb out of the upstream's base URL"}, status_code=400)
        try:
            key = await self._secret_value(upstream.secret)
        except Exception:  # which secret failed is said; the reason may quote its value, so it is not
            logger.warning("credential proxy: the secret %r of upstream %s cannot be read", upstream.secret, name)
            return JSONResponse({"error": f"the secret {upstream.secret!r} cannot be read"}, status_code=502)
        return await self._forward(request, upstream, grant, rest, key)

    async def _forward(self, request: Request, upstream: Upstream, grant: Grant, rest: str, key: str) -> Response:
        run = self.usage.setdefault(grant.run_id, ProxyUsage())
        self.usage.move_to_end(grant.run_id)
        while len(self.usage) > KEEP_RUNS:
            self.usage.popitem(last=False)
        run.requests += 1
        counted = self._metrics.proxy_bytes
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROPPED_REQUEST]
        headers += [(upstream.header, upstream.template.format(secret=key)), ("accept-encoding", "identity")]

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                run.bytes_up += len(chunk)
                counted.labels(upstream=upstream.name, direction="up").inc(len(chunk))
                yield chunk

        import httpx

        target = _target(upstream, request, rest)
        outgoing = self._http.build_request(request.method, target, headers=headers, content=body())
        try:
            answer = await self._http.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            self._metrics.proxy_requests.labels(upstream=upstream.name, outcome="unreachable").inc()
            logger.warning(
                "credential proxy: %s unreachable (%s), run %s", upstream.name, type(exc).__name__, grant.run_id
            )
            return JSONResponse({"error": f"upstream {upstream.name} unreachable"}, status_code=502)
        logger.debug(
            "credential proxy: run %s %s %s/%s: %d",
            grant.run_id,
            request.method,
            upstream.name,
            rest,
            answer.status_code,
        )
        self._metrics.proxy_requests.labels(upstream=upstream.name, outcome=f"{answer.status_code // 100}xx").inc()
        scrubber = KeyScrubber(key.encode())
        reader = UsageReader(event_stream="text/event-stream" in answer.headers.get("content-type", ""))

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    run.bytes_down += len(chunk)
                    counted.labels(upstream=upstream.name, direction="down").inc(len(chunk))
                    reader.feed(chunk)
                    if out := scrubber.feed(chunk):
                        yield out
                if tail := scrubber.finish():
                    yield tail
                self._count_tokens(grant.run_id, run, upstream.name, reader.finish())
            finally:
                await answer.aclose()

        mask = "*" * len(key)
        kept = {k: v.replace(key, mask) for k, v in answer.headers.items() if k.lower() not in _DROPPED_RESPONSE}
        return StreamingResponse(relay(), status_code=answer.status_code, headers=kept)

    def _count_tokens(self, run_id: str, run: ProxyUsage, upstream: str, counts: TokenCounts) -> None:
        run.tokens += counts
        self._observe(run_id, counts)
        for kind, value in _tokens_of(counts).items():
            if value:
                self._metrics.proxy_tokens.labels(upstream=upstream, kind=kind).inc(value)


def upstream_client() -> httpx.AsyncClient:
    """The client the proxy forwards with: no redirects followed (a redirect goes back to the agent as it came),
    30 s to connect and write, 10 minutes between two chunks of an answer (a long completion streams slowly)."""
    import httpx

    return httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=600.0), follow_redirects=False, trust_env=False)


def _raw_rest(request: Request) -> str:
    """The request path after ``/<upstream>/``, still percent-encoded as the agent sent it."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    _, _, rest = raw.split(b"?")[0].lstrip(b"/").partition(b"/")
    return rest.decode("ascii", errors="replace")
