"""Files in the web chat, inbound (issue 14, item 3): upload one with a message, and get back what was uploaded.

* ``POST /web/FOLDER/uploads`` (multipart: ``file``, optional ``content`` and ``topic``) behind the chat's token
  stores one inbound message whose attachment carries the file as base64 ``data``, exactly as an adapter would send
  it; the agent receives it in its inbox when a run takes the message (:mod:`kanmon.gateway.inbox`). A file over
  ``attachments.max_bytes`` is a 413 and stores nothing.
* ``GET /web/FOLDER/files/SEQ/INDEX`` behind the same token gives the bytes back, for the transcript: images the
  browser can show safely (PNG, JPEG, GIF, WebP) inline, everything else as a download (``application/octet-stream``,
  ``Content-Disposition: attachment``), always ``nosniff`` and sandboxed. The page fetches them with its token in the
  ``Authorization`` header and shows them from ``blob:`` URLs, so no token is ever in a URL.
* What a transcript event says about a row's files is :func:`kanmon.web.webchat_attachments.chat_attachments`.
"""

from __future__ import annotations

import base64
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from fastapi import Path as FilePath
from pydantic import BaseModel, ConfigDict

from kanmon.gateway import Gateway
from kanmon.gateway.attachments import DEFAULT_MIME, decode_data, read_attachments
from kanmon.store import NewMessage
from kanmon.web.auth_first import AuthFirstRoute
from kanmon.web.deps import WebConfig, accepting_writes, get_config, get_gateway
from kanmon.web.media import FILE_CONTENT
from kanmon.web.validation import storable_text
from kanmon.web.webchat import MAX_SEQ, TOPIC_PATTERN, sender_of  # sender_of: the chat's one rule for who is speaking
from kanmon.web.webchat_attachments import INLINE_TYPES, MAX_FILES
from kanmon.web.webchat_auth import AUTH_RESPONSES, WebGroup

__all__ = ["Uploaded", "router"]

router = APIRouter(tags=["web chat"], route_class=AuthFirstRoute)

_MAX_NAME_CHARS = 255
UPLOAD_EXAMPLE = {
    "requestBody": {
        "content": {"multipart/form-data": {"example": {"file": "(the file)", "content": "the report", "topic": ""}}}
    }
}


class Uploaded(BaseModel):
    """The stored message (its seq is its event id in the stream) and the file's size in bytes."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True, "seq": 43, "id": "m-9", "size": 20480}]})

    ok: bool = True
    seq: int
    id: str
    size: int


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ConfigDep = Annotated[WebConfig, Depends(get_config)]


@router.post(
    "/web/{folder:path}/uploads",
    summary="Send a file (multipart `file`, with optional `content` text and `topic`) to the group's web chat.",
    dependencies=[Depends(accepting_writes)],
    responses={**AUTH_RESPONSES, 413: {"description": "File too large."}, 422: {"description": "Bad form."}},
    openapi_extra=UPLOAD_EXAMPLE,
)
async def upload(
    group: WebGroup,
    request: Request,
    gateway: GatewayDep,
    config: ConfigDep,
    file: Annotated[UploadFile, File(description="The file.")],
    content: Annotated[str, Form(max_length=1024 * 1024)] = "",
    topic: Annotated[str, Form(pattern=TOPIC_PATTERN)] = "",
) -> Uploaded:
    try:
        text = storable_text(content.strip() and content)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"content {exc}") from None
    data = await file.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise HTTPException(status_code=413, detail=f"file larger than {config.max_upload_bytes} bytes")
    name = "".join(ch for ch in (file.filename or "file") if ch.isprintable())[:_MAX_NAME_CHARS] or "file"
    mime = (file.content_type or DEFAULT_MIME).split(";")[0].strip().lower()[:100] or DEFAULT_MIME
    attachment = {"name": name, "mime": mime, "size": len(data), "data": base64.b64encode(data).decode("ascii")}
    sender, sender_name = sender_of(request, config)
    new = NewMessage(
        chat_jid=f"web:{group.folder}",
        content=text,
        sender=sender,
        sender_name=sender_name,
        topic=topic,
        origin="web",
        attachments=[attachment],
    )
    stored = (await gateway.put_message(new)).message
    return Uploaded(seq=stored.seq, id=stored.id, size=len(data))


@router.get(
    "/web/{folder:path}/files/{seq}/{index}",
    summary="A file sent in the group's web chat (images inline, anything else as a download).",
    response_class=Response,
    responses={**AUTH_RESPONSES, 200: FILE_CONTENT, 404: {"description": "No such file in this chat."}},
)
async def file_of(
    group: WebGroup,
    gateway: GatewayDep,
    seq: Annotated[int, FilePath(ge=1, le=MAX_SEQ)],
    index: Annotated[int, FilePath(ge=0, lt=MAX_FILES)],
) -> Response:
    chat = f"web:{group.folder}"
    rows = await gateway.db.once(gateway.store.chat_messages, chat, seq - 1, limit=1)
    found = read_attachments(rows[0].attachments) if rows and rows[0].seq == seq else []
    if not 0 <= index < len(found) or found[index].data is None:
        raise HTTPException(status_code=404, detail="no such file in this chat")
    attachment = found[index]
    body = decode_data(attachment.data or "")
    inline = attachment.mime in INLINE_TYPES
    disposition = "inline" if inline else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(attachment.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }
    return Response(body, media_type=attachment.mime if inline else DEFAULT_MIME, headers=headers)
