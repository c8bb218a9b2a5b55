"""Per-run tokens of the credential proxy (issue 19): the placeholder key an agent holds instead of the real one.

A run of a group that uses an upstream (``anthropic``, ``openai`` …) gets one token per upstream when it starts.
A token names its run and group and is signed (HMAC-SHA256) together with the upstream, with a key only this data
dir has, so it is good for that run, that group and that upstream only. It is revoked when the run ends: a check
asks whether its run is still live (``is_live``), so nothing has to be remembered per token, and a gated restarted
while an agent works keeps honouring that agent's token once it has re-attached the run (SPEC §11 reclaim), while a
finished run's token is refused for ever. The proxy (:mod:`kanmon.web.credproxy`) swaps a valid token for the real
key on the way out, so the key never enters the agent's container or process.

Shape: ``kanmon-run-<payload>.<mac>``, ``payload`` the URL-safe base64 of ``"<run_id>\\n<folder>"`` and ``mac``
the URL-safe base64 of HMAC-SHA256(key, ``"kanmon-run\\n<run_id>\\n<folder>\\n<upstream>"``). Signatures are compared
with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["TOKEN_PREFIX", "Grant", "RunTokens"]

#: Every token starts with this, so a leaked one is recognisable (and an SDK that checks a key's shape accepts it).
TOKEN_PREFIX = "kanmon-run-"  # noqa: S105 - a prefix, not a password


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows: ``upstream``, for run ``run_id`` of group ``folder``."""

    run_id: str
    folder: str
    upstream: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RunTokens:
    """Makes and checks run tokens with ``key`` (32 random bytes, e.g. :func:`kanmon.gateway.media_links.load_key`).

    ``is_live(run_id)`` says whether a run is going on now (started, or re-attached after a restart, and not ended);
    a token of any other run is refused.
    """

    def __init__(self, key: bytes, is_live: Callable[[str], bool]) -> None:
        if len(key) < 16:
            raise ValueError("a run-token key needs at least 16 bytes")
        self._key = key
        self._is_live = is_live

    def issue(self, run_id: str, folder: str, upstreams: Iterable[str]) -> dict[str, str]:
        """The tokens of ``run_id`` of ``folder``, one per upstream: ``{upstream: token}`` (the same every time)."""
        payload = _b64(f"{run_id}\n{folder}".encode())
        return {upstream: f"{TOKEN_PREFIX}{payload}.{self._mac(run_id, folder, upstream)}" for upstream in upstreams}

    def check(self, token: str, upstream: str) -> Grant | None:
        """The grant of ``token`` if it is well signed for ``upstream`` and its run is live; None otherwise."""
        payload, dot, mac = token.removeprefix(TOKEN_PREFIX).rpartition(".")
        if not token.startswith(TOKEN_PREFIX) or not dot or len(token) > 1024:
            return None
        try:
            run_id, newline, folder = _unb64(payload).decode().partition("\n")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not newline or not hmac.compare_digest(mac.encode(), self._mac(run_id, folder, upstream).encode()):
            return None
        return Grant(run_id, folder, upstream) if self._is_live(run_id) else None

    def _mac(self, run_id: str, folder: str, upstream: str) -> str:
        message = f"kanmon-run\n{run_id}\n{folder}\n{upstream}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())
