"""`gated usage`, the usage lines of `gated status`, and the budget settings of `gated group set` (issue 16 item 4).

Bad input is one line, exit 2, and changes nothing; ``gated usage --json`` keeps its documented shape.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kanmon.gated.exits import Exit
from kanmon.store import Store, UsageEntry
from tests.cli_world import Gated, gated_cli, ok, one_line_error, sqlite_store

NUMBERS = {"outputs", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    return gated_cli(data_dir, monkeypatch, "corp", "ops")


@pytest.fixture
def store(data_dir: Path, gated: Gated) -> Iterator[Store]:
    with sqlite_store(data_dir) as opened:
        yield opened


def spend(store: Store, folder: str, day: str, cost: float, *, run: str = "r1", session: str | None = "s1") -> None:
    now = dt.datetime.now(dt.UTC)
    store.record_usage([UsageEntry(
        run_id=run, output_index=0, group_folder=folder, topic="", chat_jid=f"web:{folder}", session_id=session,
        day=day, recorded_at=now, input_tokens=100, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=3,
        cost_usd=cost,
    )])  # fmt: skip


def config_of(store: Store, folder: str) -> dict[str, object]:
    group = store.get_group(folder)
    assert group is not None
    return dict(group.container_config)


def test_a_daily_budget_and_a_zone_are_group_settings(gated: Gated, store: Store) -> None:
    ok(gated("group", "set", "corp", "--daily-budget", "$2.50", "--timezone", "Asia/Tokyo"))
    assert config_of(store, "corp") == {"daily_budget": 2.5, "timezone": "Asia/Tokyo"}
    shown = ok(gated("group", "show", "corp"))
    assert "$2.50 a day" in shown and "Asia/Tokyo" in shown
    one_line_error(gated("group", "set", "corp", "--daily-budget", "-1"), "--daily-budget: expected US dollars")
    one_line_error(gated("group", "set", "corp", "--daily-budget", "lots"), "--daily-budget: expected US dollars")
    one_line_error(gated("group", "set", "corp", "--daily-budget", "nan"), "--daily-budget: expected US dollars")
    one_line_error(gated("group", "set", "corp", "--timezone", "Mars/Olympus"), "--timezone: unknown time zone")
    assert config_of(store, "corp") == {"daily_budget": 2.5, "timezone": "Asia/Tokyo"}
    ok(gated("group", "set", "corp", "--reset", "daily-budget"))
    assert config_of(store, "corp") == {"timezone": "Asia/Tokyo"}


def test_usage_json_has_its_documented_shape(gated: Gated, store: Store) -> None:
    ok(gated("group", "set", "corp", "--daily-budget", "5", "--timezone", "Asia/Tokyo"))
    today = dt.datetime.now(ZoneInfo("Asia/Tokyo")).date()
    spend(store, "corp", today.isoformat(), 0.03)
    spend(store, "corp", (today - dt.timedelta(days=3)).isoformat(), 1.0, run="r0", session="s0")
    report = json.loads(ok(gated("usage", "--json")))
    assert set(report) == {"group", "since", "total", "groups", "days", "sessions"}
    assert (report["group"], report["since"]) == (None, None)
    assert report["total"] == {"outputs": 2, "input_tokens": 200, "output_tokens": 40, "cache_read_tokens": 2000,
                               "cache_write_tokens": 6, "cost_usd": 1.03}  # fmt: skip
    corp, ops = report["groups"]
    assert {k: corp[k] for k in ("folder", "timezone", "today", "spent_today", "daily_budget")} == {
        "folder": "corp", "timezone": "Asia/Tokyo", "today": today.isoformat(), "spent_today": 0.03,
        "daily_budget": 5.0,
    }  # fmt: skip
    assert set(corp) == {"folder", "timezone", "today", "spent_today", "daily_budget"} | NUMBERS
    assert (ops["folder"], ops["daily_budget"], ops["spent_today"], ops["outputs"]) == ("ops", None, 0.0, 0)
    assert [(d["day"], d["folder"], d["cost_usd"]) for d in report["days"]] == [
        ((today - dt.timedelta(days=3)).isoformat(), "corp", 1.0), (today.isoformat(), "corp", 0.03)
    ]  # fmt: skip
    assert all(set(d) == {"day", "folder"} | NUMBERS for d in report["days"])
    [s0, s1] = report["sessions"]
    assert set(s0) == {"folder", "topic", "session_id", "first_day", "last_day"} | NUMBERS
    assert (s0["session_id"], s1["session_id"], s1["first_day"], s1["last_day"]) == (
        "s0", "s1", today.isoformat(), today.isoformat()
    )  # fmt: skip

    recent = json.loads(ok(gated("usage", "--json", "--since", "1d", "--group", "corp")))
    assert (recent["group"], recent["total"]["outputs"], [g["folder"] for g in recent["groups"]]) == (
        "corp",
        1,
        ["corp"],
    )
    text = ok(gated("usage"))
    assert "total: $1.0300" in text and "by session:" in text and "corp  s0" in text
    status = ok(gated("status"), Exit.ATTENTION)  # no gated serves here
    assert f"corp  $0.0300 of $5.00 on {today.isoformat()} (Asia/Tokyo)" in status


def test_usage_refuses_bad_input_in_one_line(gated: Gated) -> None:
    one_line_error(gated("usage", "--since", "last week"), "--since 'last week': expected a day like")
    one_line_error(gated("usage", "--since", "2026-13-01"), "--since '2026-13-01'")
    one_line_error(gated("usage", "--group", "nope"), "no group 'nope'")
    assert "usage today: none" in ok(gated("status"), Exit.ATTENTION)
    assert "total: $0.0000" in ok(gated("usage"))
