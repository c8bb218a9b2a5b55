"""The ``usage`` object of an output block (issue 16 item 4): what the model used, checked field by field.

``{"input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 1000, "cache_write_tokens": 5, "cost_usd": 0.0123}``:
every field optional (0 when left out), unknown keys ignored. A malformed ``usage`` does not make the block invalid:
its text is still the chat's, and only the usage is dropped (with one line saying why), because refusing a whole
answer over its bookkeeping would punish the user for the agent's accounting.
"""

from __future__ import annotations

import math

from kanmon.container.events import Usage

__all__ = ["MAX_COST_USD", "MAX_TOKENS", "TOKEN_FIELDS", "parse_usage"]

#: The token counts a usage object may carry, in the order :class:`Usage` declares them.
TOKEN_FIELDS: tuple[str, ...] = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
#: The largest token count taken (a 64-bit column holds it with room to sum); larger is a malformed usage.
MAX_TOKENS = 10**15
#: The largest cost of one output taken, in US dollars: sums of such stay finite on every backend (PostgreSQL's
#: float8 SUM of two values near 1e308 overflows, and a group's budget check would fail before each of its runs).
MAX_COST_USD = 10.0**6


def parse_usage(value: object) -> tuple[Usage | None, str | None]:
    """``(usage, None)`` for a valid usage object, ``(None, None)`` when there is none (``null`` or absent), and
    ``(None, reason)`` for a malformed one."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        return None, "usage must be an object"
    counts: dict[str, int] = {}
    for name in TOKEN_FIELDS:
        count = value.get(name, 0)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_TOKENS:
            return None, f"usage.{name} must be a whole number >= 0 (at most {MAX_TOKENS}), not {count!r}"
        counts[name] = count
    cost = value.get("cost_usd", 0)
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not (_finite(cost) and 0 <= cost <= MAX_COST_USD):
        return None, f"usage.cost_usd must be a number from 0 to {MAX_COST_USD:g}, not {str(cost)[:40]}"
    return Usage(**counts, cost_usd=float(cost)), None


def _finite(number: float) -> bool:
    """Whether ``number`` is a finite float, or an int one can be (``math.isfinite`` raises past that)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False
