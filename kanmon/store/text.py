"""Text every backend stores and compares the same way (hardening item 4).

Python strings can hold what no database takes: a lone surrogate (``json.loads('"\\ud83d"')``) cannot be encoded as
UTF-8 at all, and PostgreSQL refuses NUL in text while SQLite keeps it. An agent's output, an adapter's message or a
file's name may carry either. Everything the store writes goes through :func:`storable` (and :func:`storable_json`
for JSON columns) first, so a reply is never lost to its own bytes and both backends hold exactly the same text:
each lone surrogate and each NUL becomes U+FFFD, the Unicode replacement character.

Prefixes are compared with :func:`starts_with`, never ``LIKE``: SQLite's ``LIKE`` ignores ASCII case, PostgreSQL's
does not, and JIDs and keys are case-sensitive.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, func

__all__ = ["REPLACEMENT", "starts_with", "storable", "storable_json"]

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with every NUL and lone surrogate replaced by U+FFFD (the common case returns ``text`` itself)."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """A JSON value (dicts, lists, strings, numbers) with :func:`storable` applied to every string and key."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(key)): storable_json(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(child) for child in value]
    return value


def starts_with(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """``column`` begins with ``prefix``, taken literally and case-sensitively on every backend (``substr``, which
    counts characters on both; ``LIKE`` would ignore ASCII case on SQLite)."""
    return func.substr(column, 1, len(prefix)) == prefix
