"""The files agents send, in the web chat (issue 14, item 4): listed on each event, served behind the chat's token.

A row's files (the media store's entries of its ``attachments``) are listed on its :class:`~kanmon.web.webchat
.ChatEvent` as :class:`ChatFile` (index, name, type, size, whether it may be shown inline); the page fetches each one
from ``GET /web/{folder}/media/{message_id}/{index}`` with its ``Authorization: Bearer`` token, like every other
request, and shows it from a ``blob:`` URL: an image inline, anything else as a download link. Only a row of the
folder's own chat (``web:<folder>``) is served, so one group's token opens none of another group's files. Only a
file whose bytes are a raster image (sniffed when it was stored) is ever served as one; everything else is an
``application/octet-stream`` download.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from kanmon.gateway import Gateway
from kanmon.gateway.media import StoredFile
from kanmon.store import Message
from kanmon.web.deps import get_gateway
from kanmon.web.media import FILE_HEADERS
from kanmon.web.webchat_auth import AUTH_RESPONSES, WebGroup

__all__ = ["INLINE_TYPES", "ChatFile", "chat_files", "router"]

router = APIRouter(tags=["web chat"])

GatewayDep = Annotated[Gateway, Depends(get_gateway)]

#: Images a browser is given as images (no SVG: it can hold script).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"})


class ChatFile(BaseModel):
    """A file of a message: fetch it from ``/web/{folder}/media/{id}/{index}`` with the chat's token."""

    index: int
    name: str
    mime: str
    size: int
    inline: bool


def chat_files(row: Message) -> list[ChatFile]:
    """The media store's files of ``row``, as the page lists them (other attachment entries are not listed)."""
    files: list[ChatFile] = []
    for index, entry in enumerate(row.attachments or ()):
        stored = StoredFile.from_record(entry)
        if stored is not None:
            inline = stored.mime in INLINE_TYPES
            files.append(ChatFile(index=index, name=stored.name, mime=stored.mime, size=stored.size, inline=inline))
    return files


@router.get(
    "/web/{folder:path}/media/{message_id}/{index}",
    summary="A file of a message of the group's web chat (an agent's image or document).",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}, "image/png": {}}, "description": "The file."},
        **AUTH_RESPONSES,
        404: {"description": "No such message in this chat, no such file of it, or not kept any more."},
    },
)
async def chat_file(
    group: WebGroup,
    gateway: GatewayDep,
    message_id: Annotated[str, Path(max_length=512)],
    index: Annotated[int, Path(ge=0, lt=64)],
) -> Response:
    row = await gateway.db.once(gateway.store.get_message, f"web:{group.folder}", message_id)
    entries = (row.attachments or []) if row is not None else []
    stored = StoredFile.from_record(entries[index]) if index < len(entries) else None
    if stored is None:
        raise HTTPException(status_code=404, detail="no such file in this chat")
    try:
        file, size, head = await gateway.media.open_async(stored.sha256)
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail="this file is not kept any more") from None
    body = gateway.media.chunks(file, head)
    if stored.mime in INLINE_TYPES:
        return StreamingResponse(body, media_type=stored.mime, headers={**FILE_HEADERS, "Content-Length": str(size)})
    disposition = f"attachment; filename*=UTF-8''{quote(stored.name, safe='')}"
    headers = {**FILE_HEADERS, "Content-Disposition": disposition, "Content-Length": str(size)}
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)
