"""The group settings of usage accounting (issue 16 item 4): ``--daily-budget USD`` and ``--timezone ZONE``.

Declared beside the other agent settings (:func:`kanmon.gated.group_settings.settings_options`) and checked the same
way, one clear line each (:class:`~kanmon.errors.InvalidInput`). They are stored in ``container_config`` as
``daily_budget`` (US dollars, a number >= 0; 0 starts no run at all) and ``timezone`` (an IANA name: the zone whose
days the budget and ``gated usage`` count in; UTC without one). ``--reset daily-budget`` removes the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import click

from kanmon.errors import InvalidInput
from kanmon.gateway.schedule import parse_zone

__all__ = ["budget_options", "parse_budget"]


def budget_options() -> list[Callable[[Any], Any]]:
    """The click options of the usage settings."""
    return [
        click.option(
            "--daily-budget", metavar="USD", help="Most US dollars a day; once spent, runs wait for the next day."
        ),
        click.option("--timezone", metavar="ZONE", help="IANA zone the group's days are counted in.  [default: UTC]"),
    ]


def _budget(text: str) -> float:
    try:
        value = float(text.strip().removeprefix("$"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InvalidInput(f"--daily-budget: expected US dollars, a number >= 0 like 5 or 2.50, got {text!r}")
    return value


def parse_budget(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``container_config`` values of the usage options given; raises InvalidInput."""
    values: dict[str, Any] = {}
    if options.get("daily_budget") is not None:
        values["daily_budget"] = _budget(options["daily_budget"])
    if options.get("timezone") is not None:
        try:
            values["timezone"] = parse_zone(options["timezone"].strip()).key
        except InvalidInput as exc:
            raise InvalidInput(f"--timezone: {exc}") from None
    return values
