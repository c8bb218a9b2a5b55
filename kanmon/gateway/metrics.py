"""The gateway's Prometheus series (SPEC §12, issue 18 item 5), on a registry of its own.

One registry per :class:`~kanmon.gateway.service.Gateway` rather than prometheus-client's global one: tests start
several gateways in one process, and each must count only what it did. The HTTP surface serves this registry.

Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/): the ``kanmon_`` prefix, base
units in the name (``_seconds``, ``_bytes``), ``_total`` on counters (added by prometheus-client), ``_info`` on the
build's constant series; ``promtool check metrics`` passes on a live ``/metrics`` (tests/e2e/test_observability.py).
Beside kanmon's own series the registry carries the process' (``process_*``: CPU, memory, open files) and the
interpreter's (``python_info``, ``python_gc_*``). No ``_created`` series: they double the count of series for a
timestamp nobody graphs.

Label values are bounded: channels and routes are few by construction, and ``folder`` takes the first
``max_folders`` folders it sees (seeded at start with the busiest ones, :meth:`FolderLabels.seed`), the rest sharing
``other``. Updating a series costs a dict lookup and an add; nothing here touches the store: the one gauge that needs
it, the delivery backlog, is set on scrape (:meth:`GatewayMetrics.set_backlog`).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

import kanmon

__all__ = ["MAX_FOLDER_LABELS", "OTHER", "FolderLabels", "GatewayMetrics", "lag_buckets"]

# process-wide in prometheus-client: every kanmon registry (gated's, the adapters') agrees
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Folders with a label of their own (``metrics.max_folders``); the others are counted as :data:`OTHER`.
MAX_FOLDER_LABELS = 50
OTHER = "other"

_RUN_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# from an instant reply to the longest backoff worth telling apart; lag_buckets cuts them at the delivery deadline
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def lag_buckets(deadline: float | None) -> tuple[float, ...]:
    """Delivery-lag bucket bounds (seconds) up to ``deadline`` (``delivery.deadline``) and ending on it, so the
    histogram tells the replies delivered just in time from those that only made it at the last try; all of the
    defaults without a deadline."""
    if deadline is None or deadline <= 0:
        return _LAG_BUCKETS
    return (*(bound for bound in _LAG_BUCKETS if bound < deadline), float(deadline))


class FolderLabels:
    """The ``folder`` label of the per-folder series: a folder's own name for at most ``limit`` folders, then
    :data:`OTHER`. The first folders seen get the names (seeded at start with the busiest, so those are the top N
    whatever order their runs come in); a name once given is kept for the process' life (a counter's series
    never moves). ``on_new`` is called with each name given (to start its series at 0)."""

    def __init__(self, limit: int = MAX_FOLDER_LABELS, on_new: Callable[[str], object] = lambda name: None) -> None:
        self.limit = limit
        self._names: set[str] = set()
        self._on_new = on_new

    def seed(self, busiest: Iterable[str]) -> None:
        """Give names to ``busiest`` (most active first) while there is room."""
        for folder in busiest:
            self(folder)

    def __call__(self, folder: str) -> str:
        """``folder`` while there is room for it (or it has its label already), else :data:`OTHER`."""
        if folder in self._names:
            return folder
        if len(self._names) < self.limit:
            self._names.add(folder)
            self._on_new(folder)
            return folder
        return OTHER


class GatewayMetrics:
    """Every series the loop, the runs, the deliverers and the HTTP surface update.

    ``delivery_deadline`` (seconds, ``delivery.deadline``) sets the last delivery-lag bucket; ``max_folders`` bounds
    the ``folder`` label (``metrics.max_folders``).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        delivery_deadline: float | None = None,
        max_folders: int = MAX_FOLDER_LABELS,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        #: the ``folder`` label of a folder (bounded); a folder's dead letters count from 0, so a first one is a rise
        self.folder = FolderLabels(max_folders, on_new=lambda folder: self.dead_letters.labels(folder=folder))
        self._backlog_channels: set[str] = set()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(GC_COLLECTOR)
        Info("kanmon_build", "The running kanmon: its version and Python's.", registry=r).info(
            {"version": kanmon.__version__, "python": platform.python_version()}
        )
        self.store_up = Gauge(
            "kanmon_store_up", "1 while the store answers, 0 while gated waits for it (its last call).", registry=r
        )
        self.loop_last_tick = Gauge(
            "kanmon_loop_last_tick_timestamp_seconds", "When the loop last completed a tick (Unix time).", registry=r
        )
        self.messages_ingested = Counter(
            "kanmon_messages_ingested", "Inbound messages read by the loop.", ["platform"], registry=r
        )
        self.messages_refused = Counter(
            "kanmon_messages_refused",
            "Inbound messages whose sender was not allowed (auth.*).",
            ["platform"],
            registry=r,
        )
        for built_in in ("web", "local"):  # the built-in channels' series exist from the start: a first one is a rise
            self.messages_ingested.labels(platform=built_in)
            self.messages_refused.labels(platform=built_in)
        self.poll_seconds = Histogram("kanmon_poll_seconds", "Time of one loop tick.", registry=r)
        self.cursor_lag = Gauge(
            "kanmon_cursor_lag", "Inbound rows stored but not yet consumed by an agent (status new).", registry=r
        )
        self.impulse_held = Gauge("kanmon_impulse_held", "Chats the impulse gate is holding.", registry=r)
        self.queue_running = Gauge("kanmon_queue_running", "Runs in progress.", registry=r)
        self.queue_waiting = Gauge("kanmon_queue_waiting", "Lanes waiting for a slot.", registry=r)
        self.runs = Counter(
            "kanmon_runs", "Finished runs by result and group folder (bounded: then 'other').", ["result", "folder"],
            registry=r,
        )  # fmt: skip
        self.run_seconds = Histogram("kanmon_run_seconds", "Run duration.", buckets=_RUN_BUCKETS, registry=r)
        self.container_start_seconds = Histogram(
            "kanmon_container_start_seconds", "Time for a runtime to start a run.", registry=r
        )
        self.deliveries = Counter(
            "kanmon_deliveries", "Outbound delivery attempts by channel and result.", ["channel", "result"], registry=r
        )
        self.delivery_lag_seconds = Histogram(
            "kanmon_delivery_lag_seconds", "From an outbound row's creation to its delivery (the last bucket: "
            "delivery.deadline).", buckets=lag_buckets(delivery_deadline), registry=r,
        )  # fmt: skip
        self.delivery_backlog = Gauge(
            "kanmon_delivery_backlog", "Outbound rows pending delivery (due or backing off) by channel; 'none': no "
            "channel takes their chat. Counted when /metrics is scraped.", ["channel"], registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "kanmon_http_requests", "HTTP requests by route template and status.", ["route", "status"], registry=r
        )
        self.http_request_seconds = Histogram(
            "kanmon_http_request_duration_seconds", "Time to answer an HTTP request (to the start of the answer for "
            "event streams) by route template.", ["route"], buckets=_HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.typing_requests = Counter(
            "kanmon_typing_requests", "POST /typing to adapters by result (ok, refused, timeout, unreachable).",
            ["result"], registry=r,
        )  # fmt: skip
        self.proxy_requests = Counter(
            "kanmon_proxy_requests", "Requests through the credential proxy by upstream and outcome (2xx … 5xx, "
            "refused: no live run token, unreachable).", ["upstream", "outcome"], registry=r,
        )  # fmt: skip
        self.proxy_bytes = Counter(
            "kanmon_proxy_bytes", "Bytes through the credential proxy by upstream and direction (up, down).",
            ["upstream", "direction"], registry=r,
        )  # fmt: skip
        self.proxy_tokens = Counter(
            "kanmon_proxy_tokens", "Tokens the credential proxy's answers said they cost, by upstream and kind "
            "(input, output, cache_read, cache_write).", ["upstream", "kind"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "kanmon_dead_letters", "Batches dead-lettered after their last attempt, by group folder (bounded: then "
            "'other').", ["folder"], registry=r,
        )  # fmt: skip
        self.dead_letters.labels(folder=OTHER)
        self.usage_tokens = Counter(
            "kanmon_usage_tokens", "Tokens agents reported, by group folder (bounded: then 'other') and kind "
            "(input, output, cache_read, cache_write).", ["folder", "kind"], registry=r,
        )  # fmt: skip
        self.usage_cost = Counter(
            "kanmon_usage_cost_usd", "US dollars agents reported, by group folder (bounded: then 'other').",
            ["folder"], registry=r,
        )  # fmt: skip
        self.task_fires = Counter("kanmon_task_fires", "Task occurrences stored as messages.", registry=r)
        self.task_skips = Counter(
            "kanmon_task_skips", "Task occurrences missed while gated was away and skipped by policy.", registry=r
        )
        self.task_failures = Counter(
            "kanmon_task_failures",
            "Tasks marked failed (their group or chat is gone, or the scheduler failed).",
            registry=r,
        )
        self.hook_calls = Counter(
            "kanmon_hook_calls",
            "Calls into hook plugins (hook: plugin.hook) by result: ok, error (raised), late (past hooks.timeout), "
            "dropped (the plugin was stuck or too far behind).",
            ["hook", "result"],
            registry=r,
        )

    def set_backlog(self, pending: Mapping[str, int]) -> None:
        """The delivery backlog as counted now (rows by channel name); a channel no longer listed shows 0. A channel
        seen for the first time gets its delivery series at 0, so its first failure is a rise an alert sees."""
        for channel in self._backlog_channels - set(pending):
            self.delivery_backlog.labels(channel=channel).set(0)
        for channel, rows in pending.items():
            self.delivery_backlog.labels(channel=channel).set(rows)
            if channel not in self._backlog_channels and channel != "none":
                for result in ("sent", "pending", "failed"):
                    self.deliveries.labels(channel=channel, result=result)
        self._backlog_channels |= set(pending)
