"""The configuration keys of the files agents send (``media.*``, issue 14 item 4: :mod:`kanmon.gateway.media`).

:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from kanmon.gated.config_kinds import FLOAT, SIZE, STR, Key, above, at_least, key, pattern

__all__ = ["MEDIA_KEYS"]


MEDIA_KEYS: tuple[Key, ...] = (
    key(
        "media.max_bytes",
        SIZE,
        20 << 20,
        "Largest file an agent may send (its output's attachments); bigger ones are refused.",
        check=at_least(1, "a size like 512k or 20m"),
    ),
    key(
        "media.inline_bytes",
        SIZE,
        256 << 10,
        "Files up to this size also go to adapters inline, base64 in /send's data (0 = never).",
        check=at_least(0, "a size like 256k, or 0"),
    ),
    key(
        "media.url_ttl",
        FLOAT,
        900.0,
        "Seconds a signed download link sent to an adapter stays valid.",
        check=above(0),
    ),
    key(
        "media.public_url",
        STR,
        "",
        "Base URL adapters download agents' files from; empty = http://<http.listen>.",
        check=pattern("an http:// or https:// URL, or empty", r"(https?://\S+)?"),
    ),
)
