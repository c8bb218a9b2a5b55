"""Sender authorisation (issue 16 item 1): who may talk to an agent, checked on every inbound row before the layers.

Each platform (a JID's prefix: ``telegram``, ``matrix``) is ``open`` (everyone; the default, so existing installs
change nothing) or ``allowlist`` (``auth.mode``, overridden per platform by ``auth.platforms``). Under
``allowlist`` a row is let through when its sender matches an allowlist entry for

- every platform and every group (the gateway-wide list: ``gated allow add ID``),
- its platform (``--platform P``), or
- the group that owns its chat (``--group F``), or any combination of those,

where an entry's pattern is a sender id or a glob with the router's Go ``path.Match`` semantics
(:mod:`kanmon.router.glob`: ``telegram:*`` matches every Telegram user, ``*`` does not cross a ``/``).

Only rows that came in through a channel adapter (origin ``adapter:<name>``) are checked. The web chat and the
OpenAI API authenticate their callers themselves (tokens, API keys); ``gated send``, delegations between groups and
scheduled tasks come from the operator or from kanmon itself.

A refused row is not routed: the loop marks it ``skipped``, counts its sender (``gated status``) and, in a direct
chat, may offer a pairing code (:mod:`kanmon.gateway.pairing`). Groups never get an answer. The allowlist is read
from the loop's configuration cache (:class:`~kanmon.gateway.registry.Registry`), so the check costs no query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from kanmon.gateway.decisions import Layer, Refused
from kanmon.router.glob import glob_match
from kanmon.store import AllowEntry, Chat, Message

__all__ = ["CHECKED_ORIGIN_PREFIX", "MODES", "AuthConfig", "Mode", "is_allowed", "platform_of", "refusal"]

Mode = Literal["open", "allowlist"]
MODES: tuple[Mode, ...] = ("open", "allowlist")
#: Rows from channel adapters carry ``origin=adapter:<name>``; only those are checked.
CHECKED_ORIGIN_PREFIX = "adapter:"


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """The ``auth.*`` keys: modes, and DM pairing's code lifetime, rate window (seconds) and pending limit."""

    mode: Mode = "open"
    platforms: Mapping[str, Mode] = field(default_factory=lambda: MappingProxyType({}))
    pairing: bool = True
    pairing_ttl: float = 3600.0
    pairing_window: float = 600.0
    pairing_max_pending: int = 3
    pairing_max_failures: int = 5
    #: Who may run a root group's commands (/status, /approve, /reject, /pair) from a channel adapter's chat: sender
    #: globs (the router's Go ``path.Match`` rules). None by default: under ``open``, a chat routed to a root group is
    #: anyone's, and its commands must not be.
    operators: tuple[str, ...] = ()

    def is_operator(self, message: Message) -> bool:
        """Whether ``message``'s sender may run a root group's commands: always for kanmon's own surfaces (web chat
        with its token, ``gated send``, the OpenAI API with its key), from a channel adapter only when the sender
        matches ``operators``."""
        if not message.origin.startswith(CHECKED_ORIGIN_PREFIX):
            return True
        return bool(message.sender) and any(glob_match(pattern, message.sender) for pattern in self.operators)

    def mode_for(self, platform: str) -> Mode:
        """The mode of ``platform``: its override, or ``mode``."""
        return self.platforms.get(platform, self.mode)

    @property
    def everyone_allowed(self) -> bool:
        """True when no platform uses an allowlist (nothing to check)."""
        return self.mode == "open" and all(mode == "open" for mode in self.platforms.values())


def platform_of(chat_jid: str) -> str:
    """The platform of a JID: the part before the first ``:``."""
    return chat_jid.partition(":")[0]


def is_allowed(entries: Sequence[AllowEntry], *, platform: str, folder: str, sender: str) -> bool:
    """True when an entry for (every platform or ``platform``) and (every group or ``folder``) matches ``sender``."""
    if not sender:
        return False
    return any(
        entry.platform in ("", platform) and entry.folder in ("", folder) and glob_match(entry.pattern, sender)
        for entry in entries
    )


def refusal(
    message: Message, config: AuthConfig, entries: Sequence[AllowEntry], owner: str, chat: Chat | None
) -> Refused | None:
    """The refusal of ``message`` in a chat owned by ``owner``, or None when its sender may go on to the layers.

    A chat is direct when its row says ``is_group`` false and names its adapter (``channel``): adapters must send
    ``is_group`` (README, "Channel adapters"); a chat without a row (no adapter ever stored it) is never direct."""
    if not message.origin.startswith(CHECKED_ORIGIN_PREFIX):
        return None
    platform = platform_of(message.chat_jid)
    if config.mode_for(platform) == "open":
        return None
    if is_allowed(entries, platform=platform, folder=owner, sender=message.sender):
        return None
    direct = chat is not None and chat.channel is not None and not chat.is_group
    why = f"sender {message.sender or '(none)'} is not on the {platform} allowlist of {owner}"
    return Refused(message, Layer.AUTH, why, direct=direct)
