"""The HTTP surface of one gated (SPEC §11, §12): one FastAPI app, served by uvicorn inside ``gated run``.

It holds no state of its own: everything comes from the :class:`~kanmon.gateway.Gateway` it is built around, and
every message it accepts goes into the store through the gateway (which wakes the loop). Each area is a router of
its own module: health and metrics, the channel-adapter API, the web chat, the OpenAI-compatible API.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kanmon import redaction
from kanmon.errors import InvalidInput
from kanmon.gateway import Gateway
from kanmon.store import PrefixTaken, StoreError, StoreFenced, StoreUnavailable
from kanmon.web import (
    adapters,
    api_schema,
    docs,
    health,
    media,
    openai_api,
    webchat,
    webchat_files,
    webchat_media,
    webchat_topics,
)
from kanmon.web.adapter_webhooks import webhooks
from kanmon.web.auth_first import parse_failure
from kanmon.web.deps import WebConfig
from kanmon.web.openai_auth import ApiError

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


_UPLOAD_PATH = re.compile(r"/web/.+/uploads")


DESCRIPTION = (
    "Channel adapters post what their platform received to `/v1/messages` and get the agents' replies at"
    " `POST <url>/send` (the **webhooks** below; docs/adapter-protocol.md has a minimal adapter). The web chat and the"
    ' OpenAI-compatible API use the same store. Every error of kanmon\'s own routes is `{"detail": …}`.'
)


class KanmonApp(FastAPI):
    """FastAPI with the finished OpenAPI document of :mod:`kanmon.web.api_schema`."""

    def openapi(self) -> dict[str, Any]:
        return api_schema.openapi(self)


def create_app(gateway: Gateway, config: WebConfig | None = None) -> FastAPI:
    """The FastAPI app of one gated."""
    config = config or WebConfig()
    redaction.remember(config.channel_secret)  # never in a log line (SPEC §14), nor the tokens the routes hand out
    app = KanmonApp(
        title="kanmon",
        summary="Channel adapters, web chat, metrics and health of one gated.",
        description=DESCRIPTION,
        version="1",
        docs_url=None,  # kanmon.web.docs serves /docs and /redoc from files of its own: no CDN
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.state.config = config
    app.state.draining = False
    app.add_exception_handler(RequestValidationError, _plain_validation_errors)
    app.add_exception_handler(StoreError, _store_errors)
    app.add_exception_handler(ApiError, openai_api.api_error)
    app.include_router(health.router)
    app.include_router(adapters.router)
    app.include_router(webchat.router)
    app.include_router(webchat_topics.router)
    # Last of the chat's {folder:path} routes: their paths end with a number, the others' with a word (stream, me,
    # uploads …), so these take no path of a folder that contains "media" or "files" (acme/media/press/stream).
    app.include_router(webchat_files.router)
    app.include_router(webchat_media.router)
    app.include_router(media.router)
    app.include_router(openai_api.router)
    app.include_router(docs.router)
    app.webhooks.include_router(webhooks)
    # a web chat upload may be as large as a file is allowed to be, plus the rest of an ordinary request
    upload_bytes = config.max_upload_bytes + config.max_body_bytes
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, upload_bytes=upload_bytes)

    app.add_middleware(RequestMetrics, gateway=gateway)
    return app


async def _plain_validation_errors(request: Request, exc: Exception) -> Response:
    """422 with where, what and the pydantic type of each error, never the offending input.

    FastAPI's default answer echoes the input back; a body holding ``NaN`` or a lone surrogate (both accepted by
    Python's JSON parser) cannot be encoded again, and the 422 became a 500. An echo of up to 1 MiB helps nobody.
    """
    assert isinstance(exc, RequestValidationError)
    failure = parse_failure(exc)  # a body AuthFirstRoute let the dependencies see first
    if isinstance(failure, StarletteHTTPException):
        return JSONResponse({"detail": failure.detail}, status_code=failure.status_code, headers=failure.headers)
    exc = failure or exc
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")).encode("utf-8", "backslashreplace").decode(),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _store_errors(request: Request, exc: Exception) -> Response:
    """The one place a store error becomes an HTTP answer: the store unreachable (or this gated overtaken) is 503
    with Retry-After, a JID prefix another adapter owns 409, a value the store refuses 400."""
    if isinstance(exc, StoreUnavailable | StoreFenced):
        logger.warning("%s %s: store unavailable: %s", request.method, _route_template(request.scope), exc)
        detail = "the store is unavailable; retry shortly"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
    if isinstance(exc, PrefixTaken):
        return JSONResponse({"detail": f"{exc}; that adapter must give it up first"}, status_code=409)
    if isinstance(exc, InvalidInput):
        return JSONResponse({"detail": str(exc)}, status_code=400)
    logger.error("%s %s: store error: %s", request.method, _route_template(request.scope), exc)
    return JSONResponse({"detail": "the store failed; retry later"}, status_code=503, headers={"Retry-After": "5"})


def _route_template(scope: Scope) -> str:
    """The matched route's path template (``/web/{folder}/messages``), never the raw path: bounded label values."""
    route = scope.get("route")  # set by the router on the scope it shares with the middleware
    return str(getattr(route, "path", None) or "unmatched")


class RequestMetrics:
    """Counts each HTTP request by route template and status, and times it to its response's start (for a stream,
    when its headers go out), in ``kanmon_http_requests_total`` and ``kanmon_http_request_duration_seconds``.

    A plain ASGI middleware: starlette's ``BaseHTTPMiddleware`` runs the app in a task of its own, and a client that
    left a streaming answer (an OpenAI client stopping mid-stream) became a logged traceback there.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock, metrics = self.gateway.clock, self.gateway.metrics
        began = clock.monotonic()

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = _route_template(scope)  # the router has put the matched route on the shared scope by now
                metrics.http_request_seconds.labels(route=route).observe(clock.monotonic() - began)
                metrics.http_requests.labels(route=route, status=str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before they are read whole (SPEC §14: 1 MiB default)."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = max(upload_bytes, max_bytes)  # the limit of web chat uploads (/web/FOLDER/uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if _UPLOAD_PATH.fullmatch(scope.get("path", "")) else self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            # Past the limit the app is told the client went away, and the client gets 413 from here: raising would
            # reach the app's body parser, which reports any failure as a 400.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                refused = True
                await self._refuse(scope, receive, send, limit)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"request body larger than {limit} bytes"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
