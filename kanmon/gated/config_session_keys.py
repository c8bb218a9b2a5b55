"""The configuration keys of session reset policies and the memory flush turn (issue 16 items 2 and 3): gated's
defaults for groups that do not set their own (``gated group set --session-reset …``).

:mod:`kanmon.gated.config_keys` puts them in the one key table, beside ``session_idle_expiry`` (the idle length).
"""

from __future__ import annotations

from typing import Any

from kanmon.gated.config_kinds import FLOAT, INT, STR, Check, Key, Kind, above, choice
from kanmon.gateway.session_policy import DEFAULT_FLUSH_PROMPT, MAX_IDLE, MIN_IDLE

__all__ = ["IDLE_EXPIRY", "SESSION_KEYS"]

#: The check of ``session_idle_expiry`` (a key of :mod:`kanmon.gated.config_keys`, older than these): 0 (never) or an
#: idle length a session can reach, as ``gated group set --session-idle`` takes it.
IDLE_EXPIRY = Check(
    f"0 (never), or seconds from {MIN_IDLE:g} to {MAX_IDLE:g} (365 days)",
    lambda seconds: seconds == 0 or MIN_IDLE <= seconds <= MAX_IDLE,
)


def _key(name: str, kind: Kind, default: Any, doc: str, **extra: Any) -> Key:
    return Key(name=name, attr=f"gateway.{name}", kind=kind, default=default, doc=doc, **extra)


SESSION_KEYS: tuple[Key, ...] = (
    _key(
        "session_reset",
        choice("none", "idle", "daily", "both"),
        "idle",
        "When sessions start afresh: idle (after session_idle_expiry; 0 = never), daily, both or none.",
    ),
    _key(
        "session_reset_hour",
        INT,
        4,
        "Local hour (0-23, in the group's time zone) of the daily session reset.",
        check=Check("an hour from 0 to 23", lambda hour: 0 <= hour <= 23),
    ),
    _key(
        "session_flush_prompt",
        STR,
        DEFAULT_FLUSH_PROMPT,
        "What the memory flush turn asks the agent before its session is reset (--memory-flush on).",
        check=Check("some text", lambda text: bool(text.strip())),
    ),
    _key(
        "session_flush_timeout",
        FLOAT,
        300.0,
        "Seconds a memory flush turn may take; past it, it is stopped and the reset goes ahead.",
        check=above(0),
    ),
    _key(
        "session_watch_interval",
        FLOAT,
        60.0,
        "Seconds between the expiry watcher's looks for sessions a policy expired (reset unasked).",
        check=above(0),
    ),
)
