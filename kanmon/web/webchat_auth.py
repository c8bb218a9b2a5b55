"""The web chat's tokens (SPEC §11, §14): several per group (one per link handed out, each with a label and revocable
on its own: :mod:`kanmon.store.webchat`), kept only as sha256 hashes, compared in constant time.

A request without its folder's token learns nothing, not even whether the folder exists: a group that does not exist,
one without a web token and one whose token differs all answer the same 401 after the same work (the same store reads,
and :data:`COMPARED` constant-time comparisons: with each of the group's hashes, padded with a dummy hash that matches
no token). Only a malformed folder name is told apart (404): no group can have one, so saying so reveals nothing.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Query

from kanmon import redaction
from kanmon.folders import is_valid_folder
from kanmon.gateway import Gateway
from kanmon.store import Group
from kanmon.web.deps import get_gateway
from kanmon.web.tokens import token_hash

__all__ = [
    "AUTH_RESPONSES",
    "REFUSED",
    "FolderPath",
    "StreamAccess",
    "StreamGroup",
    "WebGroup",
    "still_allowed",
    "valid_folder",
    "web_group",
    "web_group_for_stream",
]

REFUSED = "missing or wrong web token (`gated group web-token FOLDER` makes one)"

GatewayDep = Annotated[Gateway, Depends(get_gateway)]
FolderPath = Annotated[str, Path(description="The group's folder, e.g. `support` or `corp/eng`.")]

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong web token, or no such group: the two look the same without the token."},
    404: {"description": "Not a valid folder name."},
}


# What a token is also compared with, so every request costs the same comparisons: no token hashes to it that anyone
# knows.
_NO_HASH = token_hash(secrets.token_urlsafe(32))
COMPARED = 8  # a request's token is compared with this many hashes (more only for a group with more tokens)


def valid_folder(folder: str) -> str:
    """``folder`` if it is a well-formed folder name; 404 otherwise (no group can have it)."""
    if not is_valid_folder(folder):
        raise HTTPException(status_code=404, detail=f"no group {folder!r}: not a valid folder name")
    return folder


async def _authorized(gateway: Gateway, folder: str, token: str | None) -> Group:
    """The group ``folder`` when ``token`` is one of its web tokens; the one :data:`REFUSED` 401 in every other case."""
    group, stored = await gateway.db.once(gateway.store.group_and_web_token_hashes, valid_folder(folder))
    # both sides hashed first: equal lengths, and nothing about the token's length or content leaks through timing;
    # every hash is compared (no early exit), padded with the dummy to the same number of comparisons for a group
    # with one token, with none, and no group at all
    given = token_hash(token or "").encode()
    padded = stored + [_NO_HASH] * (COMPARED - len(stored))
    matches = [hmac.compare_digest(given, known.encode("utf-8", "surrogatepass")) for known in padded]
    if group is None or not token or not any(matches):
        raise HTTPException(status_code=401, detail=REFUSED, headers={"WWW-Authenticate": "Bearer"})
    redaction.remember(token)  # a real token (perhaps printed by `gated group web-token`): never to be logged
    return group


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def web_group(
    folder: FolderPath,
    gateway: GatewayDep,
    authorization: Annotated[str | None, Header(description="`Bearer <the group's web token>`")] = None,
) -> Group:
    """The group ``folder``, when the request carries its web token (401 otherwise, 404 for a malformed name)."""
    return await _authorized(gateway, folder, _bearer(authorization))


@dataclass(frozen=True, slots=True)
class StreamAccess:
    """The group a stream follows and the hash of the token that opened it (checked again while the stream lasts, so
    revoking a token also ends the streams it opened)."""

    group: Group
    token_hash: str


async def web_group_for_stream(
    folder: FolderPath,
    gateway: GatewayDep,
    token: Annotated[
        str | None,
        Query(description="The group's web token, for EventSource, which cannot set headers.", max_length=512),
    ] = None,
    authorization: Annotated[str | None, Header(description="`Bearer <token>`, for clients that can")] = None,
) -> StreamAccess:
    """Like :func:`web_group`, also taking the token from ``?token=``.

    The browser's ``EventSource`` cannot set request headers, so the page has no other way to present the token
    than the URL. That URL reaches uvicorn's access log at DEBUG, where gated's log formatter blanks the token
    (:mod:`kanmon.redaction`); a proxy's access log is the operator's to keep. No other route accepts a token in the
    URL.
    """
    given = _bearer(authorization) or token
    group = await _authorized(gateway, folder, given)
    return StreamAccess(group, token_hash(given or ""))


async def still_allowed(gateway: Gateway, access: StreamAccess) -> bool:
    """Whether the token that opened a stream is still one of its group's (not revoked, the group not removed)."""
    hashes = await gateway.db.once(gateway.store.web_token_hashes, access.group.folder)
    return any(hmac.compare_digest(access.token_hash, known) for known in hashes)


WebGroup = Annotated[Group, Depends(web_group)]
StreamGroup = Annotated[StreamAccess, Depends(web_group_for_stream)]
