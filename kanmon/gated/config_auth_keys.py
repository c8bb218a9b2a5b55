"""The configuration keys of sender authorisation and DM pairing (``auth.*``, issue 16 item 1:
:mod:`kanmon.gateway.auth`, :mod:`kanmon.gateway.pairing`).

:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from kanmon.folders import is_platform
from kanmon.gated.config_kinds import BOOL, FLOAT, GLOBS, INT, URLS, Key, Kind, above, at_least, choice, key

__all__ = ["AUTH_KEYS"]

_MODES = ("open", "allowlist")


def _parse_modes(raw: object) -> Mapping[str, str]:
    """Platform modes, both folded to lower case as a JID's platform part is (:data:`kanmon.folders.PLATFORM_PATTERN`,
    and as ``privacy.redact`` folds its platforms); a key that is no platform, or one platform twice, is refused."""
    pairs = [(name.lower(), mode.lower()) for name, mode in URLS.parse(raw).items()]
    modes = dict(pairs)
    if len(modes) < len(pairs) or not all(is_platform(name) and mode in _MODES for name, mode in pairs):
        raise ValueError(raw)
    return MappingProxyType(modes)


_PLATFORM_MODES = Kind(
    "platform=mode pairs, each platform (a JID prefix like telegram) once, each mode open or allowlist (a YAML "
    "mapping, or comma-separated)",
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
