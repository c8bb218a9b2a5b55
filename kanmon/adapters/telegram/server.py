"""The Telegram adapter's own HTTP endpoints, called by gated (SPEC §11, arizuko's adapter endpoints).

* ``POST /send`` ``{chat_jid, content, reply_to, thread_id, idempotency_key, attachments?}``: post a reply;
  ``{"ok": true, "id": "<telegram message id>"}``. The ``Idempotency-Key`` header (else the body's key) makes a
  retry post nothing twice. 422 when Telegram refuses it for good (gated marks the row failed), 429 with
  ``Retry-After`` under Telegram's flood control, 502 when Telegram is unreachable (gated retries both).
* ``POST /typing`` ``{chat_jid, on, thread_id?}``: start or stop the "typing…" indicator.
* ``GET /files/<file_id>``: the file of an inbound attachment, fetched from the Bot API on demand.
* ``GET /health``: ``{status, name, jid_prefixes}``.

Every endpoint but ``/health`` wants ``Authorization: Bearer <http.channel_secret>``, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from telegram import Bot
from telegram.error import BadRequest, TelegramError

from kanmon import redaction
from kanmon.adapters.telegram.chat_action import Typing
from kanmon.adapters.telegram.outbound import SendLater, SendRefused, SendRequest, TelegramSender

__all__ = ["SendBody", "TypingBody", "create_app", "parse_jid"]

PREFIX = "telegram:"


class SendBody(BaseModel):
    """What gated posts to ``/send`` (:meth:`kanmon.gateway.adapters.HttpChannelDeliverer.body`)."""

    model_config = ConfigDict(extra="ignore")

    chat_jid: str
    content: str = Field(default="", max_length=1024 * 1024)
    reply_to: str | None = None
    thread_id: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=512)
    attachments: list[dict[str, Any]] | None = Field(default=None, max_length=10)


class TypingBody(BaseModel):
    """arizuko's ``/typing`` body."""

    model_config = ConfigDict(extra="ignore")

    chat_jid: str
    on: bool = True
    thread_id: str | None = None


def parse_jid(jid: str) -> int:
    """The Telegram chat id of ``telegram:<id>``; 400 for anything else."""
    room = jid.removeprefix(PREFIX)
    if not jid.startswith(PREFIX) or not room.lstrip("-").isdigit():
        raise HTTPException(status_code=400, detail=f"not a Telegram chat JID: {jid!r} (expected telegram:<chat id>)")
    return int(room)


def _message_id(value: str | None) -> int | None:
    """A Telegram message id from a kanmon id: ``123``, or the message an edit or reaction was about (``123:edit:9``).
    Anything else (a web or generated id) names no Telegram message: None."""
    head = (value or "").partition(":")[0]
    return int(head) if head.isdigit() else None


def _thread(value: str | None) -> int | None:
    """A forum topic's ``message_thread_id``; a kanmon topic that is not one (``#name``, a web topic) is None."""
    return int(value) if value and value.isdigit() else None


def _request(body: SendBody, key: str) -> SendRequest:
    return SendRequest(
        chat_id=parse_jid(body.chat_jid),
        content=body.content,
        key=key,
        reply_to=_message_id(body.reply_to),
        thread_id=_thread(body.thread_id),
        attachments=list(body.attachments or ()),
    )


def _refusal(exc: SendRefused | SendLater) -> JSONResponse:
    """422 for a refusal for good; 429 with ``Retry-After`` under flood control; 502 while Telegram is unreachable."""
    error = {"ok": False, "error": str(exc)}
    if isinstance(exc, SendRefused):
        return JSONResponse(error, status_code=422)
    if exc.retry_after is None:
        return JSONResponse(error, status_code=502)
    return JSONResponse(error, status_code=429, headers={"Retry-After": str(max(1, round(exc.retry_after)))})


def _secret_checker(channel_secret: str) -> Callable[..., None]:
    """The dependency that wants ``Authorization: Bearer <channel secret>`` (401 otherwise)."""
    expected = hashlib.sha256(channel_secret.encode()).hexdigest().encode()

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).hexdigest().encode()
        # both sides hashed: equal lengths; an empty secret (none configured) matches nothing
        if not channel_secret or scheme.lower() != "bearer" or not hmac.compare_digest(digest, expected):
            raise HTTPException(status_code=401, detail="missing or wrong channel secret")

    return authorized


def create_app(*, bot: Bot, sender: TelegramSender, typing: Typing, channel_secret: str, name: str) -> FastAPI:
    """The adapter's FastAPI app."""
    app = FastAPI(title=f"kanmon Telegram adapter {name}", version="1")
    authorized = _secret_checker(channel_secret)
    Auth = [Depends(authorized)]

    @app.post("/send", dependencies=Auth)
    async def send(
        body: SendBody, idempotency_key: Annotated[str | None, Header(max_length=512)] = None
    ) -> JSONResponse:
        key = idempotency_key or body.idempotency_key or f"unkeyed-{uuid.uuid4().hex}"
        try:
            message_id = await sender.send(_request(body, key))
        except (SendRefused, SendLater) as exc:
            return _refusal(exc)
        return JSONResponse({"ok": True, "id": message_id})

    @app.post("/typing", dependencies=Auth)
    async def typing_action(body: TypingBody) -> dict[str, bool]:
        chat_id = parse_jid(body.chat_jid)
        if body.on:
            typing.start(chat_id, _thread(body.thread_id))
        else:
            typing.stop(chat_id)
        return {"ok": True}

    @app.get("/files/{file_id}", dependencies=Auth, response_class=Response)
    async def files(file_id: str) -> Response:
        try:
            found = await bot.get_file(file_id)
            data = bytes(await found.download_as_bytearray())
        except BadRequest as exc:
            raise HTTPException(status_code=404, detail=f"no such file: {redaction.redact(str(exc))}") from None
        except TelegramError as exc:
            raise HTTPException(status_code=502, detail=f"Telegram unreachable: {redaction.redact(str(exc))}") from None
        media_type = mimetypes.guess_type(found.file_path or "")[0] or "application/octet-stream"
        return Response(data, media_type=media_type)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "name": name, "jid_prefixes": [PREFIX]}

    return app
