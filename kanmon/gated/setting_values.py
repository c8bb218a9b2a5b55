"""The spellings of durations and memory sizes in group settings (``--timeout 30m``, ``--memory 512m``).

:mod:`kanmon.gated.group_settings` parses options with them, :mod:`kanmon.gated.group_view` shows values with them.
"""

from __future__ import annotations

import math
import re

from kanmon.gated.config_kinds import parse_size

__all__ = ["MAX_DURATION", "MIN_DURATION", "format_duration", "parse_duration", "parse_memory"]

_MIN_MEMORY = 6 << 20  # Docker refuses less
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_DURATION = 0.001  # seconds
MAX_DURATION = 100 * 365.25 * 86400  # seconds: a century
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``1.5``, ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``; ``ValueError`` unless between
    :data:`MIN_DURATION` and :data:`MAX_DURATION` (a shorter one is shown as ``0.000000s``, which reads back as no
    duration at all; a longer one is no timeout anybody means)."""
    text = text.strip().lower()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    elif _DURATION.fullmatch(text):
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    else:
        raise ValueError(text)
    if not (math.isfinite(seconds) and MIN_DURATION <= seconds <= MAX_DURATION):
        raise ValueError(text)
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest spelling :func:`parse_duration` reads back: ``90s`` → ``1m30s``, ``3600`` → ``1h``."""
    if seconds != int(seconds):
        text = repr(float(seconds))  # the shortest spelling that reads back exactly
        return f"{text if 'e' not in text else format(seconds, 'f')}s"
    rest, parts = int(seconds), []
    for unit in "dhms":
        size = _DURATION_UNITS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def parse_memory(text: str) -> int:
    """Bytes from a size like ``512m`` or ``2g`` (binary units), at least 6m; ``ValueError`` otherwise."""
    size = parse_size(text)
    if size < _MIN_MEMORY:
        raise ValueError(text)
    return size
