"""The configuration keys of what gated tells its operator: log lines (``log.*``) and metrics (``metrics.*``).

:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from kanmon.gated.config_kinds import BOOL, INT, Key, at_least, choice, key
from kanmon.gateway.metrics import MAX_FOLDER_LABELS

__all__ = ["OBSERVE_KEYS"]


OBSERVE_KEYS: tuple[Key, ...] = (
    key("log.level", choice("DEBUG", "INFO", "WARNING", "ERROR", fold=str.upper), "INFO", "Least severe level logged."),
    key("log.format", choice("text", "json"), "text", "Log line format."),
    key(
        "log.access",
        BOOL,
        False,
        "Log every HTTP request (uvicorn's access log, tokens redacted) at INFO; it is on at DEBUG anyway.",
    ),
    key(
        "metrics.max_folders",
        INT,
        MAX_FOLDER_LABELS,
        "Group folders with a folder label of their own in /metrics (the busiest); the rest count as other.",
        check=at_least(1, "a whole number of folders, 1 or more"),
    ),
)
