"""The configuration keys of outbound delivery (SPEC §11): how long and how often a reply is retried, how long one
request to an adapter may take, how many chats of one adapter are sent to at once, and the typing pings.
:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from kanmon.gated.config_kinds import FLOAT, INT, Key, above, at_least, key

__all__ = ["DELIVERY_KEYS"]

_POSITIVE = above(0)
_POSITIVE_INT = at_least(1)
_NON_NEGATIVE = at_least(0, "a number")


DELIVERY_KEYS: tuple[Key, ...] = (
    key(
        "delivery.deadline",
        FLOAT,
        86400.0,
        "Seconds an outbound message keeps being retried before 'failed'.",
        check=_POSITIVE,
    ),
    key(
        "delivery.retry_base_delay",
        FLOAT,
        1.0,
        "Seconds before the first delivery retry; grows exponentially.",
        check=_NON_NEGATIVE,
    ),
    key(
        "delivery.request_timeout",
        FLOAT,
        10.0,
        "Seconds one POST to an adapter or daemon may take (plus 1 s per MiB of the reply's files).",
        check=_POSITIVE,
    ),
    key(
        "delivery.chats_at_once",
        INT,
        8,
        "Chats of one adapter sent to at once (each chat's replies still go one at a time, in order).",
        check=_POSITIVE_INT,
    ),
    key(
        "delivery.typing_interval",
        FLOAT,
        4.0,
        "Seconds between POST /typing to an adapter that takes typing while a run works; 0 = never.",
        check=_NON_NEGATIVE,
    ),
)
