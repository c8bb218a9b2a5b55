"""The configuration keys of PII redaction in prompts (``privacy.*``, issue 16 item 5: :mod:`kanmon.gateway.privacy`)
and of lifecycle hooks (``hooks.*``, issue 16 item 6: :mod:`kanmon.gateway.hooks`).

:mod:`kanmon.gated.config_keys` puts them in the one key table; :func:`privacy_problem` checks what one key alone
cannot: a redacting gated needs a salt, and the salt must be a configured secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kanmon.folders import is_platform
from kanmon.gated.config_kinds import BOOL, FLOAT, NAMES, STR, Key, Kind, above, key, pattern

__all__ = ["HOOK_KEYS", "PRIVACY_KEYS", "privacy_problem"]


_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _parse_modules(raw: object) -> tuple[str, ...]:
    """Dotted module names, case kept, each once: a YAML list, or comma-separated text."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise TypeError(type(raw).__name__)
    names = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not all(_MODULE.fullmatch(name) for name in names):
        raise ValueError(raw)
    return names


_MODULES = Kind("module names like my_hooks.audit (a YAML list, or comma-separated)", _parse_modules, show=",".join)


def _parse_platforms(raw: object) -> tuple[str, ...]:
    """Platform names folded to lower case, as a JID's platform part is (:data:`kanmon.folders.PLATFORM_PATTERN`);
    one no JID can have (``telegram:``, ``tele gram``) is refused: it would never match a chat, and that chat's ids
    would reach the agents unredacted without a word."""
    names: tuple[str, ...] = NAMES.parse(raw)
    if not all(map(is_platform, names)):
        raise ValueError(raw)
    return names


_PLATFORMS = Kind(
    "platform names like telegram, as JIDs begin (a YAML list, or comma-separated)", _parse_platforms, show=",".join
)


PRIVACY_KEYS: tuple[Key, ...] = (
    key(
        "privacy.redact",
        _PLATFORMS,
        (),
        "Platforms (JID prefixes) whose user and chat ids agents see only as salted hashes: telegram,matrix.",
    ),
    key(
        "privacy.salt",
        STR,
        "",
        "The secret (secrets: section) that salts those hashes: 16 characters at least; keep it stable.",
        check=pattern("a secret name like PII_SALT, or empty", r"([A-Za-z_][A-Za-z0-9_]{0,127})?"),
    ),
    key("privacy.redact_names", BOOL, False, "Replace display names by the sender's hash too (privacy.redact)."),
)

HOOK_KEYS: tuple[Key, ...] = (
    key(
        "hooks.modules",
        _MODULES,
        (),
        "Modules of trusted local hook plugins to import, besides kanmon.hooks entry points.",
    ),
    key("hooks.entry_points", BOOL, True, "Load the hook plugins installed packages declare (kanmon.hooks)."),
    key(
        "hooks.timeout",
        FLOAT,
        2.0,
        "Seconds a hook may take; past it the event goes on without it (it runs off the event loop).",
        check=above(0),
    ),
)


def privacy_problem(values: Mapping[str, Any]) -> str | None:
    """Why the ``privacy.*`` values cannot work together with ``secrets`` (None when they can)."""
    if not values["privacy.redact"]:
        return None
    salt = values["privacy.salt"]
    if not salt:
        return "privacy.redact needs privacy.salt: the name of a secret in the secrets: section"
    if salt not in values["secrets"]:
        return f"privacy.salt names the secret {salt}, which is not configured in the secrets: section"
    return None
