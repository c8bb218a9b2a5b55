"""The root of kanmon's exception tree: every exception kanmon defines is a :class:`KanmonError`.

    KanmonError
    ├── InvalidInput                  a value a user gave is not acceptable (exit 2, one line)
    │   ├── InvalidFolder
    │   ├── Problem                   (kanmon.gated.config_kinds; also a ValueError)
    │   ├── ConfigError               (kanmon.gated.config)
    │   ├── RouteError                (kanmon.router.errors)
    │   │   └── GlobError
    │   ├── MalformedAction           (kanmon.container.actions) an agent action of the wrong shape
    │   ├── CommandError              (kanmon.gateway.errors)
    │   ├── AttachmentRefused         (kanmon.gateway.errors)
    │   ├── OnboardingError           (kanmon.gateway.onboarding)
    │   ├── PairingError              (kanmon.gateway.pairing)
    │   ├── PluginError               (kanmon.gateway.hooks.manager) a hook plugin the config names cannot load
    │   ├── RegistrationRefused       (kanmon.adapters.gated_client)
    │   └── StateBusy                 (kanmon.adapters.state)
    ├── StoreError                    (kanmon.store.errors)
    │   ├── NotMigrated
    │   ├── StoreUnavailable          the database cannot be reached now; retried
    │   ├── StoreFenced               another gated took the store over
    │   ├── StoreLocked               (kanmon.store.lock)
    │   │   └── Overtaken             (kanmon.gated.guard)
    │   ├── NotFound                  (also an InvalidInput)
    │   ├── Conflict                  (also an InvalidInput)
    │   │   └── PrefixTaken
    │   ├── InvalidValue              (also an InvalidInput)
    │   └── UnusableStore             (also an InvalidInput)
    │       └── NoStore
    ├── ContainerError                (kanmon.container.errors)
    │   ├── RuntimeUnavailable        the runtime cannot be reached now; runs wait
    │   ├── RunNotFound
    │   ├── ImageNotFound
    │   ├── InvalidRunSpec            (also an InvalidInput)
    │   │   └── MissingSecret         (kanmon.container.agent_secrets) a secret a run needs cannot be read
    │   └── UnsafeMount               (also an InvalidInput)
    ├── GatewayError                  (kanmon.gateway.errors)
    │   ├── DeliveryError             (kanmon.gateway.delivery)
    │   └── FetchFailed               (kanmon.gateway.fetch) an attachment could not be fetched
    ├── ApiError                      (kanmon.web.openai_auth) an answer in OpenAI's error shape
    └── AdapterError                  (kanmon.adapters.errors) raised by a channel adapter's own process
        ├── SendRefused               the platform said no for good
        ├── SendLater                 not now (flood control, platform unreachable)
        ├── Stopped
        ├── MessageRefused
        ├── GatedRefused              (kanmon.adapters.matrix.gated)
        └── LoginFailed               (kanmon.adapters.matrix.run)

Every error a user can cause is an ``InvalidInput``: the CLI prints its message on one line and exits 2.
``tests/unit/test_exception_tree.py`` checks that this drawing is the tree the code has.
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
