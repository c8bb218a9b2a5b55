"""The configuration keys of scheduled tasks (issue 15, :mod:`kanmon.gateway.scheduler`): the ``scheduler`` section.

:mod:`kanmon.gated.config_keys` puts them in the one key table.
"""

from __future__ import annotations

from kanmon.errors import InvalidInput
from kanmon.gated.config_kinds import FLOAT, INT, STR, Check, Key, above, at_least, key
from kanmon.gateway.schedule import parse_zone

__all__ = ["SCHEDULER_KEYS"]


def _zone_ok(name: str) -> bool:
    try:
        parse_zone(name)
    except InvalidInput:
        return False
    return True


SCHEDULER_KEYS: tuple[Key, ...] = (
    key(
        "scheduler.timezone",
        STR,
        "UTC",
        "IANA zone of task times without --tz, and of the days of groups without --timezone (budgets).",
        check=Check("an IANA time zone like UTC or Europe/Berlin", _zone_ok),
    ),
    key(
        "scheduler.interval",
        FLOAT,
        1.0,
        "Seconds between looks at the tasks: the most a task added by another process fires late.",
        check=above(0),
    ),
    key(
        "scheduler.grace",
        FLOAT,
        60.0,
        "Seconds after which an occurrence not fired counts as missed (its task's --missed policy applies).",
        check=at_least(0, "a number"),
    ),
    key(
        "scheduler.catch_up",
        INT,
        10,
        "The most missed occurrences a task with --missed all fires after downtime (the newest ones).",
        check=at_least(1),
    ),
)
