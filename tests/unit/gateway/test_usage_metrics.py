"""The usage counters (issue 16 item 4): tokens by kind and cost, with a bounded ``folder`` label."""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.usage import UsageMetrics
from kanmon.store import UsageEntry

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def entry(folder: str, index: int = 0) -> UsageEntry:
    return UsageEntry(
        run_id="r1", output_index=index, group_folder=folder, topic="", chat_jid=f"web:{folder}", session_id=None,
        day="2026-11-30", recorded_at=NOW, input_tokens=10, output_tokens=0, cache_read_tokens=5, cost_usd=0.25,
    )  # fmt: skip


def test_folders_past_the_bound_share_the_other_label() -> None:
    metrics = GatewayMetrics(max_folders=2)
    usage = UsageMetrics(metrics)
    usage.count([entry("a"), entry("b"), entry("c"), entry("d"), entry("a", 1)])
    sample = metrics.registry.get_sample_value
    assert sample("kanmon_usage_tokens_total", {"folder": "a", "kind": "input"}) == 20
    assert sample("kanmon_usage_tokens_total", {"folder": "b", "kind": "cache_read"}) == 5
    assert sample("kanmon_usage_tokens_total", {"folder": "other", "kind": "input"}) == 20
    assert sample("kanmon_usage_cost_usd_total", {"folder": "other"}) == pytest.approx(0.5)
    assert sample("kanmon_usage_cost_usd_total", {"folder": "c"}) is None
    assert sample("kanmon_usage_tokens_total", {"folder": "a", "kind": "output"}) is None  # zero: no series
