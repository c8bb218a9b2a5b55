"""Group folder names (SPEC §2), JIDs and web chat topics: the vocabulary every package shares."""

from __future__ import annotations

import re

from kanmon.errors import InvalidFolder, InvalidInput

__all__ = [
    "FOLDER_PATTERN",
    "MAX_JID_LENGTH",
    "PLATFORM_PATTERN",
    "WEB_TOPIC_PATTERN",
    "family_parent",
    "is_platform",
    "is_valid_folder",
    "jid_problem",
    "split_jid",
    "validate_folder",
    "validate_jid",
    "validate_topic",
]

FOLDER_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}(?:/[a-z0-9][a-z0-9_-]{0,62}){0,7}")


def is_valid_folder(folder: str) -> bool:
    """True when ``folder`` is a well-formed group folder (no ``..``, no absolute path, nothing else)."""
    return FOLDER_PATTERN.fullmatch(folder) is not None


def family_parent(folder: str, parent: str | None) -> str | None:
    """The parent of group ``folder`` whose ``parent`` setting is ``parent``: that setting, else its folder path's
    parent (``corp/eng``'s is ``corp``); None for a root group. The one rule of the group family (commands, agent
    actions, onboarding, ``gated group show``)."""
    if parent:
        return parent
    return folder.rsplit("/", 1)[0] if "/" in folder else None


def validate_folder(folder: str) -> str:
    """Return ``folder`` unchanged, or raise :class:`InvalidFolder`."""
    if not is_valid_folder(folder):
        raise InvalidFolder(folder)
    return folder


#: A web chat's topic: what its page and API take (a path segment, a URL fragment), "" being the main topic. Other
#: platforms' topics are their own thread ids and are taken as they come.
WEB_TOPIC_PATTERN = r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$"
_WEB_TOPIC = re.compile(WEB_TOPIC_PATTERN)


def validate_topic(chat_jid: str, topic: str) -> str:
    """Return ``topic`` unchanged, or raise :class:`InvalidInput` (one line) when ``chat_jid`` is a web chat
    (``web:…``) and ``topic`` is not one its page could open (:data:`WEB_TOPIC_PATTERN`)."""
    if chat_jid.startswith("web:") and _WEB_TOPIC.fullmatch(topic) is None:
        raise InvalidInput(
            f"invalid topic {topic!r} for the web chat {chat_jid}: up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return topic


#: A JID's platform part (``telegram`` of ``telegram:42``) as a channel adapter registers it (its JID prefixes): lower
#: case, so settings that name a platform (``auth.platforms``, ``--session-reset-for``) spell it so too.
PLATFORM_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,31}"
_PLATFORM = re.compile(PLATFORM_PATTERN)


def is_platform(name: str) -> bool:
    """True when ``name`` is spelled as a JID's platform part is (:data:`PLATFORM_PATTERN`)."""
    return _PLATFORM.fullmatch(name) is not None


#: The longest chat JID kanmon takes (the adapters' API refuses a longer one too).
MAX_JID_LENGTH = 512
_ROOM = re.compile(r"[^\s\x00-\x1f\x7f]+")


def jid_problem(jid: str) -> str | None:
    """Why ``jid`` is not a chat JID (one line), or None when it is: ``<platform>:<room>``, the platform spelled as
    an adapter registers it (:data:`PLATFORM_PATTERN`: ``telegram``, not ``TeleGram``), a room of one character or
    more without white space or control characters, at most :data:`MAX_JID_LENGTH` characters in all (SPEC §2)."""
    platform, colon, room = jid.partition(":")
    if not colon:
        return f"invalid chat JID {jid!r}: expected <platform>:<room>"
    if not is_platform(platform):
        return (
            f"invalid chat JID {jid!r}: the platform {platform!r} must be lower-case letters, digits, '_', '.' or '-' "
            "(at most 32, as adapters register it)"
        )
    if not room:
        return f"invalid chat JID {jid!r}: no room after {platform + ':'!r}"
    if _ROOM.fullmatch(room) is None:
        return f"invalid chat JID {jid!r}: no white space or control characters"
    if len(jid) > MAX_JID_LENGTH:
        return f"invalid chat JID of {len(jid)} characters: at most {MAX_JID_LENGTH}"
    return None


def validate_jid(jid: str) -> str:
    """``jid`` when it is a chat JID; raises :class:`~kanmon.errors.InvalidInput` with :func:`jid_problem`'s line."""
    problem = jid_problem(jid)
    if problem is not None:
        raise InvalidInput(problem)
    return jid


def split_jid(jid: str) -> tuple[str, str]:
    """Split a JID into ``(platform, room)``: platform is the text before the first ``:``, room the rest."""
    platform, _, room = jid.partition(":")
    return platform, room
