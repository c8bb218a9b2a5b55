"""Named exit codes of `gated`."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """What a `gated` exit status means."""

    OK = 0
    FAILURE = 1  # something went wrong that is not the user's input (store unreachable, not implemented yet)
    USAGE = 2  # bad input: flags, config, folder names, routes; nothing was changed
    LOCKED = 3  # another gated holds this store
    ATTENTION = 4  # `gated status`: dead letters, failed deliveries or stuck runs want an operator (cron, monitoring)
