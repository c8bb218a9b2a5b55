"""The built-in web chat (SPEC §11): post to ``web:<folder>``, follow a topic as Server-Sent Events, the chat page.

Why it looks the way it does (arizuko's web channel, research §8.6, got each of these wrong):

* The browser's messages are stored like any channel's, through :meth:`Gateway.put_message`, and stored once. The
  agent's replies are not "sent" anywhere: the ``web`` deliverer marks them delivered, and the browser reads them
  from the store. So every row of the chat, whoever wrote it (the user, the agent, a ``⏳`` status line, a command
  answer, a dead-letter apology), reaches the page by one path: the event stream of its topic.
* Every event carries ``id: <seq>``. A browser that lost its connection reconnects with ``Last-Event-ID`` and gets
  exactly what it missed from the store: the stream subscribes to the gateway's live feed *before* it reads the
  replay, and drops live rows it has already replayed, so nothing falls into the gap and nothing comes twice.
* A slow browser never holds up the gateway: the feed cuts a subscriber that falls behind, which ends the stream,
  and the browser's reconnect replays from the store.
* Each group has its own web token (``gated group web-token FOLDER``), kept only as a sha256 hash and compared in
  constant time (:mod:`kanmon.web.webchat_auth`); without it, a group that exists looks exactly like one that does
  not. The page itself holds no secret and is the same for every folder: the token travels in the URL's fragment,
  which browsers never send, and the page keeps it in ``sessionStorage``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kanmon.folders import WEB_TOPIC_PATTERN, is_valid_folder
from kanmon.gateway import Gateway
from kanmon.gateway.typing import Working
from kanmon.store import Message, NewMessage, StoreError
from kanmon.web.auth_first import AuthFirstRoute
from kanmon.web.deps import WebConfig, accepting_writes, get_config, get_gateway
from kanmon.web.validation import storable_text
from kanmon.web.webchat_attachments import ChatAttachment, chat_attachments
from kanmon.web.webchat_auth import (
    AUTH_RESPONSES,
    FolderPath,
    StreamGroup,
    WebGroup,
    still_allowed,
)
from kanmon.web.webchat_examples import CHAT_EVENT_EXAMPLE, POST_EXAMPLE
from kanmon.web.webchat_media import chat_files

__all__ = [
    "KEEPALIVE_SECONDS",
    "REPLAY_LIMIT",
    "ChatEvent",
    "PostMessage",
    "PostedMessage",
    "chat_event",
    "event_stream",
    "router",
    "sender_of",
]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["web chat"], route_class=AuthFirstRoute)

KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies from closing an idle stream
REPLAY_LIMIT = 200  # a stream that starts from nothing (no Last-Event-ID, after=0) gets the topic's last 200 rows
REPLAY_PAGE = 500  # a reconnect replays everything it missed, read from the store this many rows at a time
RETRY_MS = 2000  # how long the browser waits before it reconnects a stream that ended
MAX_CONTENT_CHARS = 1024 * 1024  # the body limit (413) bounds the bytes; this bounds what the schema promises
MAX_SEQ = 2**62  # a seq never reaches this; larger numbers would not fit the database's integer column
TOPIC_PATTERN = WEB_TOPIC_PATTERN
MAX_SENDER_CHARS = 200
STATIC = "static"
JS = "text/javascript; charset=utf-8"
ASSETS = {
    **{name: JS for name in ("chat.js", "chat-files.js", "chat-token.js", "chat-markdown.js", "chat-scroll.js")},
    **{name: JS for name in ("chat-composer.js", "chat-rename.js", "vendor/marked.umd.js", "vendor/purify.min.js")},
    "chat.css": "text/css; charset=utf-8",
}

# The page loads nothing but its own script and style, and talks to nothing but this server.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data: blob:;"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


# ------------------------------------------------------------------------------------------------ bodies
class PostMessage(BaseModel):
    """A message typed into the web chat."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [POST_EXAMPLE]})

    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS, description="The text; not only white space.")
    topic: str = Field(
        default="",
        pattern=TOPIC_PATTERN,
        description="The conversation (each topic is its own agent session); the page makes `t-<random>`.",
    )

    @field_validator("content")
    @classmethod
    def _storable_text(cls, content: str) -> str:
        if not content.strip():
            raise ValueError("content is empty")
        try:
            return storable_text(content)
        except ValueError as exc:
            raise ValueError(f"content {exc}") from None


class PostedMessage(BaseModel):
    """The stored message: its position in the log (the event id it will have in the stream) and its id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True, "seq": 41, "id": "m-7"}]})

    ok: bool = True
    seq: int
    id: str


class ChatEvent(BaseModel):
    """The ``data`` of one ``message`` event of the stream (its ``id:`` is ``seq``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [CHAT_EVENT_EXAMPLE]})

    seq: int
    id: str
    direction: Literal["in", "out"]
    role: Literal["user", "assistant"]
    sender: str
    sender_name: str = Field(default="", description='Who wrote it, as they are shown ("": the agent).')
    content: str
    topic: str
    time: str = Field(description="ISO 8601, UTC")
    attachments: list[ChatAttachment] = Field(default_factory=list, description="The user's files, or the agent's.")


# ------------------------------------------------------------------------------------------------ dependencies
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ConfigDep = Annotated[WebConfig, Depends(get_config)]


def sender_of(request: Request, config: WebConfig) -> tuple[str, str]:
    """``(sender, sender_name)``: the trusted proxy's user when it names one, else an anonymous id from the IP."""
    if config.trusted_sender_header:
        raw = request.headers.get(config.trusted_sender_header, "")
        # header bytes arrive decoded as Latin-1; a proxy that sends a UTF-8 name means UTF-8
        value = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        name = "".join(ch for ch in value if ch.isprintable()).strip()[:MAX_SENDER_CHARS]
        if name:
            return f"web:{name}", name
    host = request.client.host if request.client is not None else ""
    return f"web:anon-{hashlib.sha256(host.encode()).hexdigest()[:8]}", "Anonymous"


# ------------------------------------------------------------------------------------------------ routes
@router.post(
    "/web/{folder:path}/messages",
    summary='Send a message to the group\'s web chat (to the topic "" unless it names one).',
    dependencies=[Depends(accepting_writes)],
    responses={**AUTH_RESPONSES, 413: {"description": "Body too large."}, 503: {"description": "Shutting down."}},
)
async def post_message(
    group: WebGroup, body: PostMessage, request: Request, gateway: GatewayDep, config: ConfigDep
) -> PostedMessage:
    sender, sender_name = sender_of(request, config)
    new = NewMessage(
        chat_jid=f"web:{group.folder}",
        content=body.content,
        sender=sender,
        sender_name=sender_name,
        topic=body.topic,
        origin="web",
    )
    stored = (await gateway.put_message(new)).message
    return PostedMessage(seq=stored.seq, id=stored.id)


@router.get(
    "/web/{folder:path}/stream",
    summary="Follow one topic of the web chat as Server-Sent Events (`id:` = seq; `Last-Event-ID` resumes).",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "`event: message` with a ChatEvent as `data`; `event: working` with `{topic, working}` (no id, never"
                " stored) when a run starts working on a topic of the chat, this one or another (`true`), and at its"
                " first reply or end (`false`); `:` keep-alive comments."
            ),
            "content": {"text/event-stream": {}},
        },
        400: {"description": "A malformed Last-Event-ID."},
        **AUTH_RESPONSES,
    },
)
async def stream(
    access: StreamGroup,
    gateway: GatewayDep,
    topic: Annotated[str, Query(pattern=TOPIC_PATTERN, description="The topic to follow.")] = "",
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Replay from after this seq; 0: the topic's last 200.")
    ] = 0,
    last_event_id: Annotated[
        str | None, Header(description="Set by a reconnecting browser; wins over `after`.")
    ] = None,
) -> StreamingResponse:
    if last_event_id is not None and last_event_id.strip():
        value = last_event_id.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise HTTPException(status_code=400, detail="Last-Event-ID must be a seq (a non-negative integer)")
        after = int(value)
    allowed = functools.partial(still_allowed, gateway, access)
    return StreamingResponse(
        event_stream(gateway, f"web:{access.group.folder}", topic, after, allowed=allowed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/chat/{folder:path}",
    summary="The chat page of a group (open it with `#token=<web token>`).",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}, "example": "<!doctype html>…"}}},
        404: {
            "description": "No group can have this folder name (`/chat/` has none): a page on where links come from.",
            "content": {"text/html": {"schema": {"type": "string"}, "example": "<!doctype html>…"}},
        },
    },
)
async def chat_page(folder: FolderPath, request: Request) -> Response:
    """The same page for every well-formed folder: whether the group exists is for the API to tell its token holder.

    A browser sent here without a group's link (``/chat/``, a mistyped name) gets a page, not the API's JSON error.
    """
    if not is_valid_folder(folder):
        return Response(_asset("chat-missing.html"), 404, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
    root = html.escape(str(request.scope.get("root_path") or ""), quote=True)
    page = _asset("chat.html").replace("{{root}}", root).replace("{{folder}}", html.escape(folder))
    return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get(
    "/chat-assets/{name:path}",
    summary="The chat page's scripts (its own, and the vendored Markdown renderer and sanitizer) and style.",
    response_class=Response,
    responses={
        200: {"content": {"text/javascript": {"schema": {"type": "string"}, "example": '"use strict";…'}}},
        404: {"description": "No such file."},
    },
)
async def chat_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no asset {name!r}")
    return Response(_asset(name), media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})


@functools.cache
def _asset(name: str) -> str:
    return (resources.files("kanmon.web") / STATIC / name).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------ the stream
async def event_stream(
    gateway: Gateway,
    chat_jid: str,
    topic: str,
    after: int,
    *,
    allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[str, None]:
    """The text of the event stream: the replay from the store, then live rows, with keep-alive comments.

    ``allowed`` is asked every :data:`KEEPALIVE_SECONDS`, busy or not: once it says no (the stream's token was
    revoked), the stream ends, and the browser's reconnect is refused.
    """
    # Subscribed before the replay is read: a row stored meanwhile is in the replay, or published live, or both
    # (and then dropped here by its seq); never in neither.
    async with gateway.feed.subscribe(chat_jid, topic) as subscription:
        yield f"retry: {RETRY_MS}\n\n"
        last = after
        try:
            async for row in _replay(gateway, chat_jid, topic, after):
                last = row.seq
                yield _event(row)
        except StoreError as exc:
            logger.warning("web stream of %s #%s: replay failed (%s); the browser will reconnect", chat_jid, topic, exc)
            return
        for busy in gateway.typing.working_topics(chat_jid):  # a change from now on comes live; these came before
            yield _working_event(Working(chat_jid, busy, True))
        live = subscription.events()
        upcoming: asyncio.Future[Message | Working] = asyncio.ensure_future(anext(live))
        revoked = _Revocation(allowed, chat_jid)
        try:
            while True:
                done, _ = await asyncio.wait({upcoming}, timeout=KEEPALIVE_SECONDS)
                if await revoked():
                    return
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                try:
                    event = upcoming.result()
                except StopAsyncIteration:
                    # cut off (it fell behind) or the gateway is stopping: the browser reconnects with Last-Event-ID
                    return
                if isinstance(event, Working):
                    yield _working_event(event)
                elif event.seq > last:
                    last = event.seq
                    yield _event(event)
                upcoming = asyncio.ensure_future(anext(live))
        finally:
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)


class _Revocation:
    """Whether a stream's token was revoked, asking ``allowed`` at most every :data:`KEEPALIVE_SECONDS` (loop time)."""

    def __init__(self, allowed: Callable[[], Awaitable[bool]] | None, chat_jid: str) -> None:
        self._allowed, self._chat_jid = allowed, chat_jid
        self._loop = asyncio.get_running_loop()
        self._ask_at = self._loop.time() + KEEPALIVE_SECONDS

    async def __call__(self) -> bool:
        if self._allowed is None or self._loop.time() < self._ask_at:
            return False
        self._ask_at = self._loop.time() + KEEPALIVE_SECONDS
        try:
            return not await self._allowed()
        except StoreError as exc:  # not known to be revoked: the stream goes on, and asks again next time
            logger.warning("web stream of %s: cannot check its token (%s)", self._chat_jid, exc)
            return False


async def _replay(gateway: Gateway, chat_jid: str, topic: str, after: int) -> AsyncIterator[Message]:
    store = gateway.store
    if after == 0:
        for row in await gateway.db.once(store.latest_chat_messages, chat_jid, topic=topic, limit=REPLAY_LIMIT):
            yield row
        return
    while True:
        rows = await gateway.db.once(store.chat_messages, chat_jid, after, topic=topic, limit=REPLAY_PAGE)
        for row in rows:
            yield row
        if len(rows) < REPLAY_PAGE:
            return
        after = rows[-1].seq


def chat_event(row: Message) -> ChatEvent:
    """What the browser is told about one stored row."""
    return ChatEvent(
        seq=row.seq,
        id=row.id,
        direction=row.direction,
        role="user" if row.direction == "in" else "assistant",
        sender=row.sender,
        sender_name=row.sender_name if row.direction == "in" else "",
        content=row.content,
        topic=row.topic,
        time=row.timestamp.isoformat(),
        attachments=chat_attachments(row) if row.direction == "in" else chat_files(row),
    )


def _event(row: Message) -> str:
    # JSON escapes every line break, so the data is one line however many lines the message has
    data = json.dumps(chat_event(row).model_dump(exclude_none=True), ensure_ascii=False, separators=(",", ":"))
    return f"id: {row.seq}\nevent: message\ndata: {data}\n\n"


def _working_event(working: Working) -> str:
    # no id: it is not a row of the log, and a reconnect must resume after the last row, not after this
    data = json.dumps({"topic": working.topic, "working": working.on}, ensure_ascii=False, separators=(",", ":"))
    return f"event: working\ndata: {data}\n\n"
