"""The files agents send, in the web chat (issue 14, item 4): listed on each event, served behind the chat's token.

A row's files (the media store's entries of its ``attachments``) are listed on its ``ChatEvent`` as
:class:`~kanmon.web.webchat_attachments.ChatAttachment` (index, name, type, size, its ``url``: ``GET
/web/{folder}/media/{message_id}/{index}``, and whether it may be shown inline); the page fetches each one with its
``Authorization: Bearer`` token, like every other request, and shows it from a ``blob:`` URL: an image inline,
anything else as a download link. Only a row of the folder's own chat (``web:<folder>``) is served, so one group's
token opens none of another group's files. Only a file whose bytes are a raster image (sniffed when it was stored)
is ever served as one; everything else is an ``application/octet-stream`` download.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from fastapi.responses import StreamingResponse

from kanmon.gateway import Gateway
from kanmon.gateway.media import StoredFile
from kanmon.store import Message
from kanmon.web.auth_first import AuthFirstRoute
from kanmon.web.deps import get_gateway
from kanmon.web.media import FILE_CONTENT, FILE_HEADERS
from kanmon.web.webchat_attachments import INLINE_TYPES, MAX_FILES, ChatAttachment
from kanmon.web.webchat_auth import AUTH_RESPONSES, WebGroup

__all__ = ["chat_files", "router"]

router = APIRouter(tags=["web chat"], route_class=AuthFirstRoute)

GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def chat_files(row: Message) -> list[ChatAttachment]:
    """The media store's files of ``row`` (an agent's reply), as the page lists them; other entries are not listed."""
    folder = row.chat_jid.removeprefix("web:")
    files: list[ChatAttachment] = []
    for index, entry in enumerate(row.attachments or ()):
        stored = StoredFile.from_record(entry)
        if stored is not None:
            url = f"/web/{folder}/media/{quote(row.id, safe='')}/{index}"
            inline = stored.mime in INLINE_TYPES
            files.append(
                ChatAttachment(
                    index=index, name=stored.name, mime=stored.mime, size=stored.size, url=url, inline=inline
                )
            )
    return files


@router.get(
    "/web/{folder:path}/media/{message_id}/{index}",
    summary="A file of a message of the group's web chat (an agent's image or document).",
    response_class=Response,
    responses={
        200: FILE_CONTENT,
        **AUTH_RESPONSES,
        404: {"description": "No such message in this chat, no such file of it, or not kept any more."},
    },
)
async def chat_file(
    group: WebGroup,
    gateway: GatewayDep,
    message_id: Annotated[str, Path(max_length=512)],
    index: Annotated[int, Path(ge=0, lt=MAX_FILES)],
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
