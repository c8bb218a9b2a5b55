"""Text a user chose (a display name, a topic's name) made fit for one line of someone else's screen or prompt."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(text: str) -> str:
    """``text`` as one line: every run of whitespace or non-printable characters (newlines, tabs, controls, bidi
    overrides: ``str.isprintable``) becomes one space, and none is left at either end."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
