"""Per-run tokens of the credential proxy (issue 19): the placeholder key an agent holds instead of the real one.

A run that may use an upstream (``anthropic``, ``openai`` …) gets one token per upstream when it starts; the token
is valid for that run, that group and that upstream only, and is revoked when the run ends. The proxy
(:mod:`kanmon.web.credproxy`) swaps a valid token for the real key on the way out, so the key never enters the
agent's container or process.

Tokens are 256 random bits from :mod:`secrets` (or the injected ``token_source`` in tests), kept only in memory:
a restart revokes every token, and a run reclaimed after a restart is given new ones when its agent is restarted.
Look-ups index the SHA-256 of the token and then compare the token itself with :func:`hmac.compare_digest`, so
neither step's timing tells anything about a valid token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["TOKEN_PREFIX", "Grant", "RunTokens"]

#: Every token starts with this, so a leaked one is recognisable (and an SDK that checks a key's shape accepts it).
TOKEN_PREFIX = "kanmon-run-"  # noqa: S105 - a prefix, not a password


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows: ``upstream``, for run ``run_id`` of group ``folder``."""

    token: str = field(repr=False)
    run_id: str
    folder: str
    upstream: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class RunTokens:
    """The live tokens of this gated's runs: issued at run start, checked per proxied request, revoked at run end."""

    def __init__(self, token_source: Callable[[], str] | None = None) -> None:
        self._new_token = token_source or (lambda: secrets.token_urlsafe(32))
        self._grants: dict[bytes, Grant] = {}
        self._by_run: dict[str, list[bytes]] = {}

    def issue(self, run_id: str, folder: str, upstreams: Iterable[str]) -> dict[str, str]:
        """New tokens for ``run_id`` of ``folder``, one per upstream: ``{upstream: token}``."""
        issued: dict[str, str] = {}
        for upstream in upstreams:
            token = TOKEN_PREFIX + self._new_token()
            digest = _digest(token)
            self._grants[digest] = Grant(token, run_id, folder, upstream)
            self._by_run.setdefault(run_id, []).append(digest)
            issued[upstream] = token
        return issued

    def check(self, token: str, upstream: str) -> Grant | None:
        """The grant of ``token`` if it is live and for ``upstream``; None otherwise (never raises)."""
        grant = self._grants.get(_digest(token))
        if grant is None or not hmac.compare_digest(grant.token.encode(), token.encode()):
            return None
        return grant if grant.upstream == upstream else None

    def revoke(self, run_id: str) -> int:
        """Revoke every token of ``run_id``; returns how many there were."""
        digests = self._by_run.pop(run_id, [])
        for digest in digests:
            self._grants.pop(digest, None)
        return len(digests)

    def __len__(self) -> int:
        return len(self._grants)
