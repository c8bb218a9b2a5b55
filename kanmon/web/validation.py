"""Validators the HTTP bodies share."""

from __future__ import annotations

__all__ = ["storable_text"]


def storable_text(value: str) -> str:
    """Text every backend can store: no NUL (PostgreSQL refuses it), no lone surrogate (not encodable as UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
    return value
