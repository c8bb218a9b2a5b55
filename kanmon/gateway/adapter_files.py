"""The files of an outbound row as a channel adapter's ``/send`` gets them (issue 14, item 4).

Each file the media store keeps becomes::

    {"url": "<gated>/media/<sha256>?exp=…&sig=…", "filename": "chart.png", "name": "chart.png",
     "mime": "image/png", "mime_type": "image/png", "size": 1234, "sha256": "…", "data": "<base64>"}

``url`` is a signed link valid for ``media.url_ttl`` seconds (:mod:`kanmon.gateway.media_links`), made anew for
each attempt; ``data`` holds the bytes, base64, only for files up to ``media.inline_bytes``. Both ``filename`` and
``name``, ``mime`` and ``mime_type`` are there because the shipped adapters read one or the other (Matrix:
``filename``, ``mime``; Telegram: ``filename``, ``mime_type``). An entry that is not one of the media store's is
passed on as stored.
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Sequence
from typing import Any

from kanmon.gateway.delivery import DeliveryError
from kanmon.gateway.media import MediaStore, StoredFile
from kanmon.gateway.media_links import MediaLinks

__all__ = ["AdapterFiles"]

logger = logging.getLogger(__name__)


class AdapterFiles:
    """Turns a row's ``attachments`` into ``/send``'s; ``inline_bytes`` is the largest file sent inline too."""

    def __init__(self, media: MediaStore, links: MediaLinks, *, inline_bytes: int) -> None:
        self.media = media
        self.links = links
        self.inline_bytes = inline_bytes

    async def describe(self, attachments: Sequence[Any]) -> list[Any]:
        """``/send``'s ``attachments`` for a row's; reads files up to ``inline_bytes`` off the event loop. Raises
        :class:`~kanmon.gateway.delivery.DeliveryError` (transient) when no link can be signed (the key file)."""
        described: list[Any] = []
        for entry in attachments:
            stored = StoredFile.from_record(entry)
            if stored is None:
                described.append(entry)
                continue
            # the first link may read (or make) the signing key: a file, so off the loop like the rest
            try:
                url = await self.media.run(functools.partial(self.links.url, stored.sha256))
            except (OSError, ValueError) as exc:  # the signing key cannot be read or made: tried again later
                raise DeliveryError(f"no download link for attachment {stored.name!r}: {exc}") from None
            item: dict[str, Any] = {
                "url": url,
                "filename": stored.name,
                "name": stored.name,
                "mime": stored.mime,
                "mime_type": stored.mime,
                "size": stored.size,
                "sha256": stored.sha256,
            }
            if stored.size <= self.inline_bytes:
                try:
                    data = await self.media.read_async(stored.sha256)
                except OSError as exc:  # gone from this machine's media store: the link answers 404 as well
                    logger.warning("attachment %s (%s) is not in the media store: %s", stored.name, stored.sha256, exc)
                else:
                    item["data"] = base64.b64encode(data).decode("ascii")
            described.append(item)
        return described
