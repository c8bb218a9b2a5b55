"""API keys of the OpenAI-compatible API (:mod:`kanmon.web.openai_api`): checking a request's (they are issued by
:func:`kanmon.web.tokens.new_api_key`).

A key looks like ``kmk_<id>_<secret>``: ``id`` (8 hex digits) is public and names the key in ``gated apikey list``;
the whole key is shown once by ``gated apikey add`` and only its sha256 is stored (SPEC §14). A request is checked
by looking its id up and comparing hashes with :func:`hmac.compare_digest`; a malformed key, an unknown id and a
wrong secret do the same work (a comparison against a dummy hash) and get the same 401, in OpenAI's error shape.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Header

from kanmon import redaction
from kanmon.errors import KanmonError
from kanmon.gateway import Gateway
from kanmon.store import ApiKey, StoreError
from kanmon.web.deps import get_gateway
from kanmon.web.tokens import KEY_PATTERN, token_hash

__all__ = ["ApiError", "api_key"]

_DUMMY_HASH = hashlib.sha256(secrets.token_bytes(32)).hexdigest()


class ApiError(KanmonError):
    """An answer in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code

    def body(self) -> dict[str, dict[str, str | None]]:
        """The JSON body OpenAI's clients parse (``openai.APIStatusError.body``)."""
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


def _unauthorized() -> ApiError:
    return ApiError(
        401, "Incorrect API key provided: make one with `gated apikey add --group FOLDER`.", code="invalid_api_key"
    )


async def api_key(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    authorization: Annotated[str | None, Header(description="`Bearer kmk_…` (from `gated apikey add`)")] = None,
) -> ApiKey:
    """The stored key the request's ``Authorization: Bearer`` names; :class:`ApiError` 401 otherwise (503 while
    the store is unreachable)."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    found = KEY_PATTERN.match(given)
    stored: ApiKey | None = None
    if found is not None:
        try:
            stored = await gateway.db.once(gateway.store.get_api_key, found.group(1))
        except StoreError:
            raise ApiError(503, "The store is unavailable; retry shortly.", type="server_error") from None
    expected = stored.key_hash if stored is not None else _DUMMY_HASH
    matches = hmac.compare_digest(token_hash(given).encode(), expected.encode())
    if stored is None or not matches:
        raise _unauthorized()
    redaction.remember(given)  # a real key: never to be logged
    return stored
