"""Replies from gated posted into Matrix rooms: as notices, in the thread they answer, split, files uploaded.

One ``/send`` from gated (SPEC §11) becomes one or more ``m.room.message`` events of msgtype ``m.notice`` (the
Matrix convention for automated output: other bots do not answer notices, so two bots cannot loop). Where they go:

- ``thread_id`` that is an event id (``$…``): into that thread (``rel_type: m.thread``), every piece of a split
  reply; a topic that is not a Matrix thread (``#name``, a sticky topic) is kanmon's own and the reply goes to the
  main timeline (arizuko's Discord adapter sent such topics as channel ids, and the sends failed);
- ``reply_to`` (an event id): the first piece is a rich reply to it;
- markdown (gated's ``format``) is rendered to Matrix HTML (``formatted_body``, markdown-it-py's CommonMark with raw
  HTML escaped) beside the plain ``body``, when the text has any markup and both fit in one event;
- ``attachments``: each ``{"url": "mxc://…" | "https://…", "filename", "mime"}`` becomes an ``m.image``,
  ``m.audio``, ``m.video`` or ``m.file`` event after the text; an https file is fetched (at most
  ``max_file_bytes``; :mod:`kanmon.adapters.fetch` says which failures gated retries) and uploaded to the content
  repository first, and one with base64 ``data`` (gated sends its agents' small files so) is uploaded from those
  bytes without a fetch.

A retried send never posts twice: its events' transaction ids derive from the idempotency key, so the homeserver
answers a repeat with the event it already has (even after a crash between posting and recording), and the adapter
records the answer under the key (:class:`~kanmon.adapters.matrix.state.AdapterState`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from markdown_it import MarkdownIt
from nio import AsyncClient, ErrorResponse, RoomSendResponse, UploadResponse

from kanmon.adapters.errors import SendLater, SendRefused
from kanmon.adapters.fetch import fetch_file
from kanmon.adapters.matrix.split import json_size, split_message
from kanmon.adapters.matrix.state import AdapterState

__all__ = ["Outgoing", "SendLater", "SendRefused", "Sender", "formatted", "text_contents"]

NOTICE = "m.notice"
TRANSIENT_ERRCODES = frozenset({"M_LIMIT_EXCEEDED", "M_UNKNOWN"})
MEDIA_MSGTYPES = {"image/": "m.image", "audio/": "m.audio", "video/": "m.video"}
EVENT_TEXT_BUDGET = 60000  # body + formatted_body of one event: the rest of 65,536 bytes is envelope and signatures
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_MARKUP = re.compile(r"<(?!/?p>|br ?/?>)")  # any tag besides paragraphs and line breaks


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """One ``/send`` request from gated."""

    room_id: str
    content: str
    key: str  # the idempotency key
    reply_to: str | None = None
    thread_id: str | None = None
    attachments: tuple[Mapping[str, Any], ...] = ()
    markdown: bool = True  # the text is markdown (gated's ``format``): send it rendered too


def _relation(thread_id: str | None, reply_to: str | None, first: bool) -> dict[str, Any] | None:
    replying = first and reply_to is not None and reply_to.startswith("$")
    if thread_id is not None and thread_id.startswith("$"):
        return {
            "rel_type": "m.thread",
            "event_id": thread_id,
            "is_falling_back": not replying,
            "m.in_reply_to": {"event_id": reply_to if replying else thread_id},
        }
    if replying:
        return {"m.in_reply_to": {"event_id": reply_to}}
    return None


def formatted(piece: str) -> dict[str, str]:
    """``format`` and ``formatted_body`` of a markdown piece; nothing for text without markup, or too large."""
    rendered = _MARKDOWN.render(piece).strip()
    if not _MARKUP.search(rendered) or json_size(piece) + json_size(rendered) > EVENT_TEXT_BUDGET:
        return {}
    return {"format": "org.matrix.custom.html", "formatted_body": rendered}


def text_contents(
    text: str, *, thread_id: str | None, reply_to: str | None, limit: int, markdown: bool = True
) -> list[dict[str, Any]]:
    """The event contents of a text reply: notices of at most ``limit`` bytes each, in the right thread."""
    contents: list[dict[str, Any]] = []
    for index, piece in enumerate(split_message(text, limit)):
        content: dict[str, Any] = {"msgtype": NOTICE, "body": piece, **(formatted(piece) if markdown else {})}
        relation = _relation(thread_id, reply_to, index == 0)
        if relation is not None:
            content["m.relates_to"] = relation
        contents.append(content)
    return contents


class Sender:
    """Posts :class:`Outgoing` replies with a logged-in nio client; one send per idempotency key at a time."""

    def __init__(
        self, client: AsyncClient, state: AdapterState, http: httpx.AsyncClient, *, limit: int, max_file_bytes: int
    ) -> None:
        self._client = client
        self._state = state
        self._http = http
        self._limit = limit
        self._max_file_bytes = max_file_bytes
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, requests holding or awaiting it)

    async def send(self, outgoing: Outgoing) -> list[str]:
        """Post ``outgoing``; return its event ids (the first is the reply's id). A key seen before posts nothing.

        Raises :class:`SendRefused` or :class:`SendLater`.
        """
        lock, users = self._locks.get(outgoing.key, (asyncio.Lock(), 0))
        self._locks[outgoing.key] = (lock, users + 1)
        try:
            async with lock:
                done = await asyncio.to_thread(self._state.sent, outgoing.key)
                if done is not None:
                    return done
                ids = await self._post(outgoing)
                await asyncio.to_thread(self._state.record_sent, outgoing.key, ids, time.time())
                return ids
        finally:
            lock, users = self._locks[outgoing.key]
            if users == 1:  # the last request of this key: its lock goes (nobody else holds or awaits it)
                del self._locks[outgoing.key]
            else:
                self._locks[outgoing.key] = (lock, users - 1)

    async def _post(self, outgoing: Outgoing) -> list[str]:
        contents = text_contents(
            outgoing.content,
            thread_id=outgoing.thread_id,
            reply_to=outgoing.reply_to,
            limit=self._limit,
            markdown=outgoing.markdown,
        )
        for attachment in outgoing.attachments:
            content = await self._file_content(attachment)
            relation = _relation(outgoing.thread_id, outgoing.reply_to, not contents)
            if relation is not None:
                content["m.relates_to"] = relation
            contents.append(content)
        if not contents:
            raise SendRefused("nothing to send: the content is blank and there are no attachments")
        base = hashlib.sha256(outgoing.key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        ids: list[str] = []
        for index, content in enumerate(contents):
            try:
                answer = await self._client.room_send(
                    outgoing.room_id, "m.room.message", content, tx_id=f"kanmon-{base}-{index}"
                )
            except (OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
                raise SendLater(f"homeserver unreachable: {type(exc).__name__}") from None
            if isinstance(answer, RoomSendResponse):
                ids.append(str(answer.event_id))
                continue
            raise _failure(answer, "send")
        return ids

    async def _file_content(self, attachment: Mapping[str, Any]) -> dict[str, Any]:
        url = str(attachment.get("url") or attachment.get("mxc") or "")
        filename = str(attachment.get("filename") or url.rstrip("/").rpartition("/")[2] or "file")
        mime = str(attachment.get("mime") or attachment.get("mime_type") or "application/octet-stream")
        size = attachment.get("size")
        inline = attachment.get("data")
        if url.startswith("mxc://"):
            mxc = url
        elif isinstance(inline, str) and inline:  # the bytes themselves (gated's small files): no fetch needed
            data = _base64(inline, filename, self._max_file_bytes)
            mxc = await self._upload(data, mime, filename)
            size = len(data)
        elif url.startswith(("https://", "http://")):
            data, mime = await self._fetch(url, mime, filename)
            mxc = await self._upload(data, mime, filename)
            size = len(data)
        else:
            raise SendRefused(f"attachment {filename!r}: url must be mxc://, https:// or http://")
        info: dict[str, Any] = {"mimetype": mime}
        if isinstance(size, int):
            info["size"] = size
        msgtype = next((kind for prefix, kind in MEDIA_MSGTYPES.items() if mime.startswith(prefix)), "m.file")
        return {"msgtype": msgtype, "body": filename, "filename": filename, "url": mxc, "info": info}

    async def _fetch(self, url: str, mime: str, filename: str) -> tuple[bytes, str]:
        fetched = await fetch_file(self._http, url, limit=self._max_file_bytes, name=filename)
        return fetched.data, (mime if mime != "application/octet-stream" else fetched.content_type or mime)

    async def _upload(self, data: bytes, mime: str, filename: str) -> str:
        try:
            answer, _ = await self._client.upload(
                io.BytesIO(data), content_type=mime, filename=filename, filesize=len(data)
            )
        except (OSError, TimeoutError) as exc:
            raise SendLater(f"homeserver unreachable: {type(exc).__name__}") from None
        if isinstance(answer, UploadResponse):
            return str(answer.content_uri)
        raise _failure(answer, "upload")


def _base64(data: str, filename: str, limit: int) -> bytes:
    """The bytes of an attachment's ``data``; :class:`SendRefused` when it is not base64 or larger than ``limit``."""
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SendRefused(f"attachment {filename!r}: data is not base64") from None
    if len(decoded) > limit:
        raise SendRefused(f"attachment {filename!r}: larger than {limit} bytes")
    return decoded


def _failure(answer: Any, what: str) -> Exception:
    """A nio error answer as :class:`SendLater` (worth a retry) or :class:`SendRefused`."""
    if not isinstance(answer, ErrorResponse):
        return SendLater(f"{what}: unexpected answer {type(answer).__name__}")
    transport = getattr(answer, "transport_response", None)
    status = int(getattr(transport, "status", 0) or 0)
    text = f"{what}: {answer.status_code or status} {answer.message}"
    if status >= 500 or status == 429 or answer.status_code in TRANSIENT_ERRCODES or not answer.status_code:
        return SendLater(text)
    return SendRefused(text)
