"""The ids a log line is about (issue 18 item 6): which run, lane, chat, folder, attempt or task, kept in a contextvar.

Where a run, a delivery or a task begins, its ids are bound for as long as it lasts::

    with bound(lane=str(lane), folder=lane.folder, attempt=2):
        ...  # every line logged here, and in the tasks started here, carries lane, folder and attempt

Nothing passes them by hand: :class:`kanmon.gated.logs.LogFormatter` adds :func:`fields` to every record it formats
(JSON keys, or ``key=value`` once at the end of a text line), whoever logged it. asyncio copies the context into each
task it creates, so a run's helpers (its recorder, its typing pings) inherit the run's ids; work shared by several
runs (a group commit) starts its task in an empty context instead, so it never speaks for one of them.

The names are fixed (:data:`FIELDS`), so a log pipeline can rely on them: ``run_id``, ``lane`` (``folder`` or
``folder#topic``), ``chat`` (a JID), ``folder``, ``attempt`` (the run's attempt at its batch, or a delivery's at its
row: 1 for the first), ``task`` (a scheduled task's id), and ``channel`` (the deliverer a delivery goes through).
Binding costs a small dict per run or delivery; reading it costs nothing when nothing logs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Final

__all__ = ["FIELDS", "bound", "fields"]

#: The fields a line may carry, in the order a text line shows them.
FIELDS: Final = ("run_id", "lane", "chat", "folder", "attempt", "task", "channel")

_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})
_CURRENT: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar("kanmon_log_fields", default=_EMPTY)


@contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Add ``ids`` (names from :data:`FIELDS`; ``None`` values are left out) to the lines logged inside the block,
    on top of those bound already; the previous ones are back when it ends. Raises ``ValueError`` for another name."""
    unknown = set(ids) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields {sorted(unknown)}: expected some of {FIELDS}")
    merged = {**_CURRENT.get(), **{name: value for name, value in ids.items() if value is not None}}
    token = _CURRENT.set(MappingProxyType({name: merged[name] for name in FIELDS if name in merged}))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def fields() -> Mapping[str, object]:
    """The ids bound where the caller runs (read-only; empty outside any :func:`bound` block)."""
    return _CURRENT.get()
