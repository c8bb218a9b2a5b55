"""The configuration keys of attachments in (issue 14): how big a file a message may bring, and how its url is
fetched (:class:`kanmon.gateway.fetch.FetchPolicy`). :mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

import ipaddress

from kanmon.gated.config_kinds import FLOAT, INT, NAMES, SIZE, Check, Key, above, at_least, key

__all__ = ["ATTACHMENT_KEYS"]

_POSITIVE = above(0)
_POSITIVE_INT = at_least(1)


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


ATTACHMENT_KEYS: tuple[Key, ...] = (
    key(
        "attachments.max_bytes",
        SIZE,
        10 << 20,
        "Largest file a message may bring: fetched from its url, sent as data, or uploaded in the web chat.",
        check=at_least(1, "a size like 512k or 20m"),
    ),
    key(
        "attachments.fetch_timeout",
        FLOAT,
        30.0,
        "Seconds one try to fetch an attachment's url may take.",
        check=_POSITIVE,
    ),
    key(
        "attachments.fetch_attempts",
        INT,
        3,
        "Tries to fetch an attachment before its note says why not.",
        check=_POSITIVE_INT,
    ),
    key(
        "attachments.allow_private",
        NAMES,
        (),
        "Private networks (CIDR, e.g. 10.0.0.0/8) attachment urls may point into (adapters always may).",
        check=Check("networks like 10.0.0.0/8,fd00::/8", lambda nets: all(map(_is_network, nets))),
    ),
)
