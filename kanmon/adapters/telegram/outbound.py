"""Posting gated's replies to Telegram: split, formatted, threaded, rate-limited and never twice.

A reply (``/send``) becomes parts: its text cut into messages (:mod:`kanmon.adapters.telegram.split`), then one
message per attachment. Each text part is sent as HTML (the agent's Markdown converted by ``chatgpt-md-converter``);
when Telegram refuses the entities (``can't parse entities``), that part is sent again as the plain Markdown it came
from, which loses the formatting and nothing else. The first part replies to the message gated names
(``reply_to``; sent even if that message is gone), and every part goes to the forum topic (``thread_id``).

**Files** are uploaded (``multipart/form-data``), never handed to Telegram as a link: gated's download links are on
its own network, which Telegram's servers usually cannot reach. A file's bytes are its base64 ``data`` (gated sends
them for files up to ``media.inline_bytes``) or else fetched from its ``url`` (:mod:`kanmon.adapters.fetch`:
streamed, in memory, at most Telegram's upload limit for bots of 50 MB; a larger file is refused with that reason,
a link failing for now is retried by gated, one answering another 4xx fails the reply). A ``file_id`` Telegram
knows is sent as is. Images go as photos, but a GIF, or one over Telegram's 10 MB photo limit, as a document.

**Never twice.** Every posted part is journaled under gated's idempotency key before ``/send`` answers
(:class:`~kanmon.adapters.state.AdapterState`); a retried ``/send`` posts only the parts the journal lacks, and
concurrent requests with one key wait for each other. The one gap no client can close: Telegram posted a message
but its answer was lost (a timeout), in which case gated's retry may post it again.

**429.** Telegram's ``retry_after`` is honoured for the whole bot: nothing is sent to Telegram before it has passed.
A wait up to ``max_inline_wait`` seconds happens inside the request; a longer one answers gated ``429`` with
``Retry-After`` (:class:`SendLater`), and gated's delivery backs off and retries, resuming at the part that was next.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from chatgpt_md_converter import telegram_format
from telegram import Bot, InputFile, ReplyParameters
from telegram import Message as TelegramMessage
from telegram.constants import FileSizeLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from kanmon import redaction
from kanmon.adapters.errors import SendLater, SendRefused
from kanmon.adapters.fetch import fetch_file
from kanmon.adapters.state import AdapterState, SentPart
from kanmon.adapters.telegram.split import split_message

__all__ = ["SendLater", "SendRefused", "SendRequest", "TelegramSender", "retry_after_seconds"]

logger = logging.getLogger(__name__)
_UNJOURNALED_KEPT = 10_000  # keys of parts posted but not journaled, kept in memory (the oldest go first)

# Telegram's words for "your HTML is not valid": then the plain text goes instead
_ENTITY_ERRORS = ("can't parse entities", "message is too long", "entity")


@dataclass(frozen=True, kw_only=True)
class SendRequest:
    """One ``/send`` from gated, checked: where, what, in reply to what, and its idempotency key."""

    chat_id: int
    content: str
    key: str
    reply_to: int | None = None
    thread_id: int | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Part:
    text: str | None = None
    attachment: dict[str, Any] | None = None


def retry_after_seconds(exc: RetryAfter) -> float:
    """The seconds a :class:`RetryAfter` asks for (PTB 22 gives an int or a timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class TelegramSender:
    """Sends :class:`SendRequest` s through ``bot``, journaling each posted part in ``state``; ``http`` fetches
    files gated gives by their link, at most ``max_file_bytes`` each (Telegram's upload limit for bots, 50 MB)."""

    def __init__(
        self,
        bot: Bot,
        state: AdapterState,
        *,
        http: httpx.AsyncClient,
        max_inline_wait: float = 5.0,
        max_file_bytes: int = FileSizeLimit.FILESIZE_UPLOAD,
        on_sent: Callable[[int], None] = lambda chat_id: None,
    ) -> None:
        self._bot = bot
        self._state = state
        self._http = http
        self._max_file_bytes = max_file_bytes
        self._max_inline_wait = max_inline_wait
        self._on_sent = on_sent
        self._not_before = 0.0  # time.monotonic() before which Telegram asked us to send nothing
        self._locks: dict[str, asyncio.Lock] = {}
        self._unjournaled: dict[str, dict[int, str]] = {}  # parts posted whose journal write failed, by key

    async def send(self, request: SendRequest) -> str:
        """Post every part of ``request`` not yet posted for its key; return the first part's Telegram message id.

        Raises :class:`SendRefused` (answer 4xx: gated marks the row failed) or :class:`SendLater` (answer 429/502:
        gated retries, and the retry resumes where this one stopped).
        """
        parts = _parts(request)
        if not parts:
            raise SendRefused("nothing to send: content is empty and there are no attachments")
        if len(self._locks) > 1000:  # forget idle keys (a lock that is held or awaited stays)
            self._locks = {key: lock for key, lock in self._locks.items() if lock.locked()}
        async with self._locks.setdefault(request.key, asyncio.Lock()):
            done = {part.index: part.message_id for part in self._state.sent(request.key)}
            done.update(self._unjournaled.get(request.key, {}))
            for index, part in enumerate(parts):
                if index not in done:
                    posted = await self._post(request, part, first=index == 0)
                    done[index] = str(posted.message_id)
                    await self._journal(request.key, SentPart(index, done[index]))
        self._on_sent(request.chat_id)
        return done[0]

    async def _journal(self, key: str, part: SentPart) -> None:
        """Write down a part Telegram took. If the journal cannot be written (a full disk), the part is kept in memory
        for as long as this adapter runs, and the send goes on as posted: answering 5xx made gated send the reply
        again and again, and every try posted it again (an outside review)."""
        try:
            await self._state.remember_sent(key, part)
        except OSError as exc:
            logger.error("could not journal part %d of %s (%s): kept in memory until a restart", part.index, key, exc)
            if len(self._unjournaled) >= _UNJOURNALED_KEPT:
                self._unjournaled.pop(next(iter(self._unjournaled)))
            self._unjournaled.setdefault(key, {})[part.index] = part.message_id

    # ------------------------------------------------------------------------------------------------ one part
    async def _post(self, request: SendRequest, part: _Part, *, first: bool) -> TelegramMessage:
        where: dict[str, Any] = {"chat_id": request.chat_id}
        if request.thread_id is not None:
            where["message_thread_id"] = request.thread_id
        if first and request.reply_to is not None:
            where["reply_parameters"] = ReplyParameters(request.reply_to, allow_sending_without_reply=True)
        if part.attachment is not None:
            return await self._file(part.attachment, where)
        assert part.text is not None
        markdown = part.text
        try:
            return await self._call(
                lambda: self._bot.send_message(text=telegram_format(markdown), parse_mode=ParseMode.HTML, **where)
            )
        except SendRefused as exc:
            if not any(words in str(exc).lower() for words in _ENTITY_ERRORS):
                raise
            logger.info("Telegram refused the HTML of a part (%s); sending it as plain text", exc)
        return await self._call(lambda: self._bot.send_message(text=markdown, **where))

    async def _file(self, attachment: dict[str, Any], where: dict[str, Any]) -> TelegramMessage:
        source = await self._file_source(attachment)
        mime = str(attachment.get("mime_type") or attachment.get("mime") or "")
        photo = attachment.get("type") == "photo" or (mime.startswith("image/") and mime != "image/gif")
        if photo and not (isinstance(source, InputFile) and _size(source) > FileSizeLimit.PHOTOSIZE_UPLOAD):
            return await self._call(lambda: self._bot.send_photo(photo=source, **where))
        # an image too large for a photo (10 MB) still goes, as a document (50 MB)
        return await self._call(lambda: self._bot.send_document(document=source, **where))

    async def _file_source(self, attachment: dict[str, Any]) -> str | InputFile:
        """What Telegram is given: a ``file_id`` it knows, else the file's bytes, uploaded: those of ``data`` (base64:
        gated's files up to ``media.inline_bytes``) or fetched from ``url`` (gated's larger files: its link is on a
        network Telegram's servers cannot reach, so Telegram is never given it). Raises :class:`SendRefused` for
        an attachment with none of them or over ``max_file_bytes``, :class:`SendLater` when the link fails for now
        (:func:`~kanmon.adapters.fetch.fetch_file`)."""
        file_id = attachment.get("file_id")
        if isinstance(file_id, str) and file_id:
            return file_id
        filename = str(attachment.get("filename") or attachment.get("name") or "") or None
        name = filename or "file"
        too_large = f"larger than Telegram's upload limit for bots ({self._max_file_bytes} bytes)"
        data, url, size = attachment.get("data"), attachment.get("url"), attachment.get("size")
        mime = str(attachment.get("mime_type") or attachment.get("mime") or "")
        if isinstance(data, str) and data:
            try:
                content = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise SendRefused(f"attachment {name!r}: data is not base64") from None
        elif isinstance(url, str) and url.startswith(("https://", "http://")):
            if isinstance(size, int) and size > self._max_file_bytes:  # gated knows the size: no fetch needed
                raise SendRefused(f"attachment {name!r}: {too_large}")
            fetched = await fetch_file(self._http, url, limit=self._max_file_bytes, name=name, too_large=too_large)
            content, mime = fetched.data, mime or fetched.content_type
        else:
            raise SendRefused(f"attachment {name!r}: no file_id, data or http(s) url")
        if len(content) > self._max_file_bytes:
            raise SendRefused(f"attachment {name!r}: {too_large}")
        upload = InputFile(content, filename=filename)
        if mime:  # gated's type (it sniffed the bytes), not a guess from the name
            upload.mimetype = mime
        return upload

    async def _call(self, send: Callable[[], Awaitable[TelegramMessage]]) -> TelegramMessage:
        """``send()``, after any wait Telegram asked for; a 429 is waited out here or handed back as SendLater."""
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                if wait > self._max_inline_wait:
                    raise SendLater(f"Telegram's flood control: retry in {wait:.0f}s", retry_after=wait)
                await asyncio.sleep(wait)
            try:
                return await send()
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                self._not_before = max(self._not_before, time.monotonic() + seconds)
                logger.warning("Telegram's flood control: nothing is sent for %gs", seconds)
            except (BadRequest, Forbidden) as exc:
                raise SendRefused(f"Telegram refused it: {_said(exc)}") from None
            except NetworkError as exc:
                raise SendLater(f"Telegram unreachable: {_said(exc)}") from None
            except TelegramError as exc:
                raise SendRefused(f"Telegram refused it: {_said(exc)}") from None


def _said(exc: TelegramError) -> str:
    """What Telegram's error says, fit to go to gated (which stores it) and to logs: the bot token blanked."""
    return redaction.redact(str(exc))


def _parts(request: SendRequest) -> list[_Part]:
    texts = [_Part(text=piece) for piece in split_message(request.content)]
    return texts + [_Part(attachment=attachment) for attachment in request.attachments]


def _size(upload: InputFile) -> int:
    """The bytes of an upload made from bytes (as :meth:`TelegramSender._file_source` makes them)."""
    content = upload.input_file_content
    return len(content) if isinstance(content, bytes) else 0
