"""``GET /media/{sha256}?exp=…&sig=…``: a file an agent sent, for the channel adapter holding a signed link to it.

The link comes in the adapter's ``/send`` (:mod:`kanmon.gateway.adapter_files`) and is valid for ``media.url_ttl``
seconds, for that one file (:mod:`kanmon.gateway.media_links`). A link that is expired, made up or altered gets the
same 403, whether or not the file exists; a valid link to a file this gated's media store does not have gets 404.
The bytes go out as a download (``Content-Disposition: attachment``, ``nosniff``, a sandboxing CSP), typed by what
they are, never rendered as a page of gated's origin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.responses import StreamingResponse

from kanmon.gateway import Gateway
from kanmon.gateway.media import sniff
from kanmon.web.auth_first import AuthFirstRoute
from kanmon.web.deps import get_gateway

__all__ = ["FILE_CONTENT", "FILE_HEADERS", "router"]

router = APIRouter(tags=["media"], route_class=AuthFirstRoute)

#: Every file answer: never sniffed into HTML by a browser, never able to run anything as gated's origin.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}
REFUSED = "invalid or expired link"
_BYTES = {"schema": {"type": "string", "format": "binary"}}
#: A file answer in the OpenAPI document: the bytes, as a download or (a raster image) to show inline.
FILE_CONTENT = {
    "description": "The file's bytes.",
    "content": {"application/octet-stream": _BYTES, "image/png": _BYTES},
}

GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@router.get(
    "/media/{sha256}",
    summary="A file an agent sent, by the signed link an adapter got in /send.",
    response_class=Response,
    responses={
        200: FILE_CONTENT,
        403: {"description": "The link is expired, or not one this gated made."},
        404: {"description": "The link is valid but the file is not kept here (any more)."},
    },
)
async def media_file(
    gateway: GatewayDep,
    sha256: Annotated[str, Path(max_length=64, description="The file's sha256, lower-case hex.")],
    exp: Annotated[str, Query(max_length=16, description="Expiry, Unix seconds.")] = "",
    sig: Annotated[str, Query(max_length=128, description="The link's signature.")] = "",
) -> Response:
    links = gateway.media_links
    if not await gateway.media.run(lambda: links.valid(sha256, exp, sig)):
        raise HTTPException(status_code=403, detail=REFUSED)
    try:
        file, size, head = await gateway.media.open_async(sha256)
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail="no such file in this gated's media store") from None
    headers = {**FILE_HEADERS, "Content-Disposition": "attachment", "Content-Length": str(size)}
    return StreamingResponse(gateway.media.chunks(file, head), media_type=sniff(head, ""), headers=headers)
