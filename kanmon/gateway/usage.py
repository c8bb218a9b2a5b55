"""A run's usage, from its output blocks to the store and the metrics (issue 16 item 4).

While a run is followed, every output that reports ``usage`` is kept in :attr:`Watched.usage
<kanmon.gateway.watch.Watched>` with the session it belonged to; the run's end turns them into
:class:`~kanmon.store.UsageEntry` rows (:func:`usage_entries`), recorded in the run's last transaction, keyed
``(run_id, output_index)`` so a replayed output is never counted twice. Each row's ``day`` is the day in the group's
time zone (``container_config.timezone``, set with ``gated group set --timezone``; UTC without one). Only rows the
store recorded for the first time are counted in the metrics (:class:`UsageMetrics`), whose ``folder`` label is
bounded (:class:`~kanmon.gateway.metrics.FolderLabels`: the busiest folders get their own, the rest share ``other``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kanmon.container.events import Output, Usage
from kanmon.errors import InvalidInput
from kanmon.gateway.metrics import MAX_FOLDER_LABELS, GatewayMetrics
from kanmon.gateway.schedule import parse_zone
from kanmon.store import Run, UsageEntry

__all__ = [
    "MAX_FOLDER_LABELS",
    "PROXY_INDEX",
    "Reported",
    "UsageMetrics",
    "group_zone",
    "local_day",
    "note_usage",
    "run_usage",
    "usage_entries",
]

logger = logging.getLogger(__name__)

#: The output index under which a run's usage counted by the credential proxy is recorded (no output carries it).
PROXY_INDEX = -1
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Reported:
    """One output's usage as a run reported it: the output's index and the session it belonged to."""

    index: int
    usage: Usage
    session_id: str | None


def run_usage(reported: Sequence[Reported], observed: Usage | None, session_id: str | None) -> list[Reported]:
    """The usage a run is charged with: what its agent reported, output by output; only when it reported nothing,
    what its API answers through the credential proxy stated (``observed``, issue 19), as one entry at
    :data:`PROXY_INDEX` in ``session_id``. The agent's own account wins: it is complete (the proxy sees only calls
    made through it) and may carry a cost, which the answers never state."""
    if reported:
        return list(reported)
    return [Reported(PROXY_INDEX, observed, session_id)] if observed is not None else []


def group_zone(config: Mapping[str, object], default: str = "UTC") -> ZoneInfo:
    """The group's time zone (``container_config.timezone``); ``default`` (gated's ``scheduler.timezone``) without
    one, and UTC for a name written by hand that is not a zone (``gated group set`` refuses those)."""
    name = config.get("timezone")
    try:
        return parse_zone(name if isinstance(name, str) else default)
    except InvalidInput:
        return _UTC


def local_day(now: dt.datetime, zone: ZoneInfo) -> str:
    """``now`` (aware) as the day ``YYYY-MM-DD`` in ``zone``."""
    return now.astimezone(zone).date().isoformat()


def usage_entries(
    run: Run, reported: Sequence[Reported], *, chat_jid: str, topic: str, zone: ZoneInfo, now: dt.datetime
) -> list[UsageEntry]:
    """The store rows of a run's reported usage, each dated ``now``'s day in ``zone``."""
    day = local_day(now, zone)
    where: dict[str, Any] = {
        "run_id": run.id,
        "group_folder": run.group_folder,
        "topic": topic,
        "chat_jid": chat_jid,
        "day": day,
    }
    return [
        UsageEntry(**where, output_index=item.index, session_id=item.session_id, recorded_at=now, **asdict(item.usage))
        for item in reported
    ]


def note_usage(run_id: str, output: Output, reported: list[Reported], session_id: str | None) -> None:
    """Keep ``output``'s usage in ``reported`` (with the run's session as of this output); a malformed usage is one
    warning in the log, and the output itself goes on to the chat."""
    if output.usage is not None:
        reported.append(Reported(output.index, output.usage, session_id))
    elif output.usage_problem is not None:
        logger.warning("output %d: its usage is ignored: %s", output.index, output.usage_problem)


class UsageMetrics:
    """Counts recorded usage into ``kanmon_usage_tokens_total{folder,kind}`` and ``kanmon_usage_cost_usd_total
    {folder}``, with the metrics' bounded folder labels (:attr:`GatewayMetrics.folder`)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self.label = metrics.folder

    def count(self, entries: Sequence[UsageEntry]) -> None:
        """Add ``entries`` (recorded for the first time) to the counters."""
        for entry in entries:
            folder = self.label(entry.group_folder)
            for kind, value in (
                ("input", entry.input_tokens), ("output", entry.output_tokens),
                ("cache_read", entry.cache_read_tokens), ("cache_write", entry.cache_write_tokens),
            ):  # fmt: skip
                if value:
                    self._metrics.usage_tokens.labels(folder=folder, kind=kind).inc(value)
            if entry.cost_usd:
                self._metrics.usage_cost.labels(folder=folder).inc(entry.cost_usd)
