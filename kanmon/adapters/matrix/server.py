"""The Matrix adapter's HTTP side, for gated: ``POST /send``, ``POST /typing``, ``GET /media/{server}/{id}``,
``GET /health``.

Every request must carry ``Authorization: Bearer <http.channel_secret>`` (compared in constant time), as gated's
deliverer sends it. ``/send`` answers ``{"ok": true, "id": "<first event id>", "ids": [...]}``; a send the
homeserver refused for good (the bot is not in the room, say) is 422 and gated fails the row; one that may work
later (homeserver down, rate limited) is 503 and gated retries it with the same ``Idempotency-Key``, which posts
nothing twice (:mod:`kanmon.adapters.matrix.outbound`). ``/typing`` ``{chat_jid, on}`` sets or clears the bot's typing
notice in the room (Matrix has none per thread); it answers ``{"ok": true}`` whatever the homeserver says.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from kanmon.adapters.matrix.config import JID_PREFIX
from kanmon.adapters.matrix.outbound import Outgoing, SendLater, SendRefused

__all__ = ["SendBody", "TypingBody", "create_app", "outgoing", "room_of", "streamed"]

logger = logging.getLogger(__name__)

# the parts of an mxc:// URI (Matrix spec, "Matrix Content (mxc://) URIs"): a server name, an opaque media id
_SERVER = re.compile(r"(?=.*[A-Za-z0-9])[A-Za-z0-9.:\[\]-]{1,255}")  # never "." or "..": no path tricks
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


class SendBody(BaseModel):
    """gated's ``/send`` body (kanmon.gateway.adapters.HttpChannelDeliverer.body)."""

    model_config = ConfigDict(extra="ignore")

    chat_jid: Annotated[str, Field(min_length=len(JID_PREFIX) + 2, max_length=512)]
    content: Annotated[str, Field(max_length=1 << 20)] = ""
    reply_to: str | None = None
    thread_id: str | None = None
    idempotency_key: Annotated[str | None, Field(max_length=512)] = None
    attachments: Annotated[list[dict[str, Any]] | None, Field(max_length=32)] = None
    format: str | None = None  # "markdown" (what gated sends) or absent: rendered; anything else: plain text


class TypingBody(BaseModel):
    """gated's ``/typing`` body (kanmon.gateway.typing.adapter_ping; arizuko's ``{chat_jid, on}``)."""

    model_config = ConfigDict(extra="ignore")

    chat_jid: Annotated[str, Field(min_length=len(JID_PREFIX) + 2, max_length=512)]
    on: bool = True
    thread_id: str | None = None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def room_of(chat_jid: str) -> str:
    """The room id of ``matrix:!<room id>``; HTTPException 400 for any other JID."""
    room_id = chat_jid.removeprefix(JID_PREFIX)
    if not chat_jid.startswith(JID_PREFIX) or not room_id.startswith("!"):
        raise HTTPException(400, f"chat_jid must be {JID_PREFIX}!<room id>, got {chat_jid!r}")
    return room_id


async def _no_typing(room_id: str, on: bool) -> None:
    return None


def _typing_route(app: FastAPI, checked: list[Any], typing: Callable[[str, bool], Awaitable[None]]) -> None:
    @app.post("/typing", dependencies=checked)
    async def post_typing(body: TypingBody) -> dict[str, bool]:
        await typing(room_of(body.chat_jid), body.on)
        return {"ok": True}


def outgoing(body: SendBody, header_key: str | None) -> Outgoing:
    """The reply a ``/send`` asks for; raises HTTPException 400 for a body that names no room or no key."""
    key = header_key or body.idempotency_key
    if not key:
        raise HTTPException(400, "an Idempotency-Key header (or idempotency_key) is required")
    return Outgoing(
        room_id=room_of(body.chat_jid),
        content=body.content,
        key=key,
        reply_to=body.reply_to,
        thread_id=body.thread_id,
        attachments=tuple(body.attachments or ()),
        markdown=body.format in (None, "markdown"),
    )


def streamed(response: httpx.Response) -> StreamingResponse:
    """A homeserver download passed through as it arrives (closed when done); 404/502 when it failed."""
    if response.status_code >= 400:
        raise HTTPException(502 if response.status_code >= 500 else 404, "the homeserver has no such file")

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()

    kept = {"content-length", "content-disposition"}
    headers = {name: value for name, value in response.headers.items() if name.lower() in kept}
    return StreamingResponse(body(), media_type=response.headers.get("content-type"), headers=headers)


def create_app(
    send: Callable[[Outgoing], Awaitable[list[str]]],
    channel_secret: str,
    *,
    media: Callable[[str, str], Awaitable[httpx.Response]],
    health: Callable[[], dict[str, Any]],
    typing: Callable[[str, bool], Awaitable[None]] = _no_typing,
) -> FastAPI:
    """The adapter's app: ``send`` posts a reply, ``media`` opens a download stream, ``health`` describes state,
    ``typing(room_id, on)`` sets the bot's typing notice (best effort: it never raises)."""
    app = FastAPI(title="kanmon matrix adapter", version="1")
    secret = _digest(channel_secret)

    def authorized(credentials: Credentials) -> None:
        given = _digest(credentials.credentials) if credentials is not None else b""
        if not hmac.compare_digest(given, secret):
            raise HTTPException(401, "missing or wrong channel secret", headers={"WWW-Authenticate": "Bearer"})

    checked = [Depends(authorized)]

    @app.post("/send", dependencies=checked)
    async def post_send(
        body: SendBody, idempotency_key: Annotated[str | None, Header(max_length=512)] = None
    ) -> dict[str, Any]:
        try:
            ids = await send(outgoing(body, idempotency_key))
        except SendRefused as exc:
            logger.error("send to %s refused: %s", body.chat_jid, exc)
            raise HTTPException(422, str(exc)) from None
        except SendLater as exc:
            logger.warning("send to %s failed, gated will retry: %s", body.chat_jid, exc)
            raise HTTPException(503, str(exc)) from None
        return {"ok": True, "id": ids[0], "ids": ids}

    _typing_route(app, checked, typing)

    @app.get("/media/{server}/{media_id}", dependencies=checked)
    async def get_media(server: str, media_id: str) -> StreamingResponse:
        if not _SERVER.fullmatch(server) or not _MEDIA_ID.fullmatch(media_id):  # nothing but a content URI's parts
            raise HTTPException(404, "not a Matrix content URI")
        response = await media(server, media_id)
        if response.status_code >= 400:
            await response.aclose()
        return streamed(response)

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return health()

    return app
