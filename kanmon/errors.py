"""The root of kanmon's exception tree.

    KanmonError
    ├── StoreError                  (kanmon.store.errors)
    │   ├── StoreUnavailable
    │   ├── NotFound                (also an InvalidInput)
    │   └── Conflict                (also an InvalidInput)
    │       └── PrefixTaken         a channel adapter claims another's JID prefix
    ├── InvalidInput
    │   ├── InvalidFolder
    │   ├── ConfigError             (kanmon.gated.config)
    │   ├── RouteError              (kanmon.router.errors)
    │   └── CommandError            (kanmon.gateway.errors)
    ├── ContainerError              (kanmon.container.errors)
    └── GatewayError                (kanmon.gateway.errors)

Every error a user can cause is an ``InvalidInput``: the CLI prints its message on one line and exits 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KanmonError(Exception):
    """Base class of every error kanmon raises on purpose."""


class InvalidInput(KanmonError):
    """Raised when a value given by a user (flag, config, API body, route) is not acceptable."""


class InvalidFolder(InvalidInput):
    """Raised when a group folder name does not match the folder grammar (SPEC §2)."""

    def __init__(self, folder: str) -> None:
        super().__init__(
            f"invalid group folder {folder!r}: use lowercase letters, digits, '_' and '-', "
            "segments separated by '/', each starting with a letter or digit (at most 8 segments of 63)"
        )
        self.folder = folder


def closest_name(word: str, names: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The name in ``names`` most like ``word``, for a "did you mean …?" hint; None when none is close enough.

    Closeness is :class:`difflib.SequenceMatcher`'s ratio, at least ``cutoff`` (0.6, difflib's own default, suits a
    word typed where a name was expected; callers that must not guess for words meant for someone else ask more).
    """
    found = difflib.get_close_matches(word, list(names), n=1, cutoff=cutoff)
    return found[0] if found else None
