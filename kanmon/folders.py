"""Group folder names (SPEC §2) and JIDs: the vocabulary every package shares."""

from __future__ import annotations

import re

from kanmon.errors import InvalidFolder

__all__ = ["FOLDER_PATTERN", "is_valid_folder", "split_jid", "validate_folder"]

FOLDER_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}(?:/[a-z0-9][a-z0-9_-]{0,62}){0,7}")


def is_valid_folder(folder: str) -> bool:
    """True when ``folder`` is a well-formed group folder (no ``..``, no absolute path, nothing else)."""
    return FOLDER_PATTERN.fullmatch(folder) is not None


def validate_folder(folder: str) -> str:
    """Return ``folder`` unchanged, or raise :class:`InvalidFolder`."""
    if not is_valid_folder(folder):
        raise InvalidFolder(folder)
    return folder


def split_jid(jid: str) -> tuple[str, str]:
    """Split a JID into ``(platform, room)``: platform is the text before the first ``:``, room the rest."""
    platform, _, room = jid.partition(":")
    return platform, room
