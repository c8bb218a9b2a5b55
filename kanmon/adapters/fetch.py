"""Fetching a reply's file by its link, for an adapter that uploads the bytes to its platform (SPEC §11).

gated sends a file over ``media.inline_bytes`` as a signed link only (``<gated>/media/<sha256>?exp=…&sig=…``, valid
``media.url_ttl`` seconds and made anew for every attempt; docs/adapter-protocol.md), on gated's own network: the
platform's servers usually cannot reach it, so the adapter fetches the file and uploads it. The link is its own
credential: nothing else (no channel secret) goes with the request, and it is never quoted whole in an error (the
reason goes back to gated, which stores it with the reply, and into logs): only its scheme, host and path are.

How a failure is answered (the rule of the Matrix adapter, kept for both): no answer, a timeout, 5xx or 408/425/429
is :class:`SendLater` (gated's delivery retries with a fresh link); any other 4xx (403 an expired or forged link,
404 a file gated no longer keeps) and a file over the limit are :class:`SendRefused` (the reply fails at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from kanmon.adapters.errors import SendLater, SendRefused

__all__ = ["Fetched", "fetch_file", "shown_url"]

_RETRIED = frozenset({408, 425, 429})  # besides 5xx: the statuses gated's own delivery retries (adapter protocol)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched file: its bytes and the answer's ``Content-Type`` without parameters (``""`` when none)."""

    data: bytes
    content_type: str


def shown_url(url: str) -> str:
    """``url`` as an error may show it: scheme, host and path, without the query that signs it."""
    split = urlsplit(url)
    return f"{split.scheme}://{split.netloc.rpartition('@')[2]}{split.path}"


async def fetch_file(http: httpx.AsyncClient, url: str, *, limit: int, name: str, too_large: str = "") -> Fetched:
    """GET ``url`` with ``http``, streamed, keeping at most ``limit`` bytes.

    ``name`` names the attachment in errors (``attachment 'chart.png': …``); ``too_large`` is the reason given for a
    file over ``limit`` (default ``larger than <limit> bytes``), refused as soon as its ``Content-Length`` or its
    bytes say so. Raises :class:`SendRefused` or :class:`SendLater` as the module says.
    """
    over = SendRefused(f"attachment {name!r}: {too_large or f'larger than {limit} bytes'}")
    try:
        async with http.stream("GET", url, follow_redirects=True) as response:
            status = response.status_code
            if status >= 400:
                error = SendLater if status >= 500 or status in _RETRIED else SendRefused
                raise error(f"attachment {name!r}: {shown_url(url)} answered {status}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise over
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > limit:
                    raise over
                chunks.append(chunk)
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
    except httpx.HTTPError as exc:
        raise SendLater(f"attachment {name!r}: {shown_url(url)}: {type(exc).__name__}") from None
    return Fetched(b"".join(chunks), kind)
