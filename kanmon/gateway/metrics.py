"""The gateway's Prometheus series (SPEC §12), on a registry of its own.

One registry per :class:`~kanmon.gateway.service.Gateway` rather than prometheus-client's global one: tests start
several gateways in one process, and each must count only what it did. The HTTP surface serves this registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

_RUN_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class GatewayMetrics:
    """Every series the loop, the runs and the deliverers update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_ingested = Counter(
            "kanmon_messages_ingested", "Inbound messages read by the loop.", ["platform"], registry=r
        )
        self.messages_refused = Counter(
            "kanmon_messages_refused",
            "Inbound messages whose sender was not allowed (auth.*).",
            ["platform"],
            registry=r,
        )
        self.poll_seconds = Histogram("kanmon_poll_seconds", "Time of one loop tick.", registry=r)
        self.cursor_lag = Gauge(
            "kanmon_cursor_lag", "Inbound rows stored but not yet consumed by an agent (status new).", registry=r
        )
        self.impulse_held = Gauge("kanmon_impulse_held", "Chats the impulse gate is holding.", registry=r)
        self.queue_running = Gauge("kanmon_queue_running", "Runs in progress.", registry=r)
        self.queue_waiting = Gauge("kanmon_queue_waiting", "Lanes waiting for a slot.", registry=r)
        self.runs = Counter("kanmon_runs", "Finished runs by result.", ["result"], registry=r)
        self.run_seconds = Histogram("kanmon_run_seconds", "Run duration.", buckets=_RUN_BUCKETS, registry=r)
        self.container_start_seconds = Histogram(
            "kanmon_container_start_seconds", "Time for a runtime to start a run.", registry=r
        )
        self.deliveries = Counter(
            "kanmon_deliveries", "Outbound delivery attempts by channel and result.", ["channel", "result"], registry=r
        )
        self.delivery_lag_seconds = Histogram(
            "kanmon_delivery_lag_seconds", "From an outbound row's creation to its delivery.", registry=r
        )
        self.http_requests = Counter(
            "kanmon_http_requests", "HTTP requests by route template and status.", ["route", "status"], registry=r
        )
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
            "kanmon_dead_letters", "Batches dead-lettered after their last attempt.", registry=r
        )
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
