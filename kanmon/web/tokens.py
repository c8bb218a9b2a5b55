"""The secrets gated hands out, made and hashed (SPEC §14): web tokens, adapter tokens and API keys.

The store keeps only :func:`token_hash` of each (sha256, hex); the secret is shown once. This module needs nothing
of HTTP, so the CLI commands that issue secrets (``gated group web-token``, ``gated apikey add``) do not import
FastAPI; the checks of a request's secret are in :mod:`kanmon.web.webchat_auth`, :mod:`kanmon.web.adapters` and
:mod:`kanmon.web.openai_auth`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from kanmon import redaction

__all__ = ["KEY_PATTERN", "KEY_PREFIX", "IssuedKey", "chat_url", "new_api_key", "new_token", "token_hash"]

KEY_PREFIX = "kmk"
#: A well-formed API key, ``kmk_<id>_<secret>``; group 1 is the public id.
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{8}})_[A-Za-z0-9_-]{{20,128}}$")


def token_hash(token: str) -> str:
    """The sha256 (hex) of a web token, an adapter token or a whole API key: what the store keeps instead of it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh web or adapter token (256 bits, URL-safe) and its hash: the token goes to its holder once, the store
    keeps only the hash, and no log line shows the token (:mod:`kanmon.redaction`)."""
    token = secrets.token_urlsafe(32)
    redaction.remember(token)
    return token, token_hash(token)


def chat_url(base_url: str, folder: str, token: str) -> str:
    """The chat page of ``folder`` with ``token`` in the fragment (browsers never send a fragment to the server)."""
    return f"{base_url.rstrip('/')}/chat/{folder}#token={token}"


@dataclass(frozen=True)
class IssuedKey:
    """An API key just made: ``key`` is shown to the operator once; ``key_hash`` is what the store keeps."""

    key_id: str
    key: str
    key_hash: str


def new_api_key() -> IssuedKey:
    """A fresh key ``kmk_<8 hex>_<43 url-safe characters>`` (256 bits of secret), its id and hash."""
    key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    redaction.remember(key)
    return IssuedKey(key_id=key_id, key=key, key_hash=token_hash(key))
