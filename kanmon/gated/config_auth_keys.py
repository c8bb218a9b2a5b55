"""The configuration keys of sender authorisation and DM pairing (``auth.*``, issue 16 item 1:
:mod:`kanmon.gateway.auth`, :mod:`kanmon.gateway.pairing`).

:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from kanmon.gated.config_kinds import BOOL, FLOAT, GLOBS, INT, URLS, Key, Kind, above, at_least, choice, key

__all__ = ["AUTH_KEYS"]

_MODES = ("open", "allowlist")


def _parse_modes(raw: object) -> Mapping[str, str]:
    modes: Mapping[str, str] = URLS.parse(raw)
    if not all(mode in _MODES for mode in modes.values()):
        raise ValueError(raw)
    return modes


_PLATFORM_MODES = Kind(
    "platform=mode pairs, each mode open or allowlist (a YAML mapping, or comma-separated)",
    _parse_modes,
    show=lambda value: ",".join(f"{name}={mode}" for name, mode in value.items()),
)


AUTH_KEYS: tuple[Key, ...] = (
    key(
        "auth.mode",
        choice(*_MODES),
        "open",
        "Who may talk to agents via channel adapters: open (everyone) or allowlist (gated allow add).",
    ),
    key(
        "auth.platforms",
        _PLATFORM_MODES,
        MappingProxyType({}),
        "auth.mode per platform (the JID prefix), e.g. telegram=allowlist,matrix=open.",
    ),
    key(
        "auth.operators",
        GLOBS,
        (),
        "Senders (globs, e.g. telegram:42) who may run /status, /approve, /reject, /pair from adapter chats.",
    ),
    key(
        "auth.pairing",
        BOOL,
        True,
        "Under allowlist, a stranger in a direct chat gets a pairing code (gated pairing approve CODE).",
    ),
    key("auth.pairing_ttl", FLOAT, 3600.0, "Seconds a pairing code stays valid.", check=above(0)),
    key(
        "auth.pairing_window",
        FLOAT,
        600.0,
        "Seconds before a sender who got a code (now expired) may get another.",
        check=above(0),
    ),
    key(
        "auth.pairing_max_pending",
        INT,
        3,
        "Most live pairing codes per platform; more strangers get none until one is decided or expires.",
        check=at_least(1),
    ),
)
