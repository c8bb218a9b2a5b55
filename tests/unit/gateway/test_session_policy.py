"""Session reset policies (issue 16 item 2), table-tested: every mode, the idle edge, the daily boundary across both
DST changes of Europe/Berlin, per-platform overrides, and settings written by hand that make no sense."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kanmon.gateway.session_policy import (
    DEFAULT_FLUSH_PROMPT,
    Flush,
    ResetPolicy,
    daily_boundary,
    expiry,
    flush_for,
    human_duration,
    policy_for,
)

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone)


IDLE = ResetPolicy(mode="idle", idle=24 * 3600)
DAILY = ResetPolicy(mode="daily", hour=4, zone="Europe/Berlin")
BOTH = ResetPolicy(mode="both", idle=3600, hour=4, zone="Europe/Berlin")


@pytest.mark.parametrize(
    ("policy", "last", "now", "reason"),
    [
        (ResetPolicy(mode="none", idle=1), at("2026-01-01T00:00"), at("2026-06-01T00:00"), None),
        (IDLE, at("2026-01-01T00:00"), at("2026-01-02T00:00"), None),  # exactly 24 h: still alive
        (IDLE, at("2026-01-01T00:00"), at("2026-01-02T00:00:01"), "idle"),
        (ResetPolicy(mode="idle", idle=0), at("2026-01-01T00:00"), at("2027-01-01T00:00"), None),  # 0: never
        (DAILY, at("2026-01-10T03:59", BERLIN), at("2026-01-10T04:00", BERLIN), "daily"),
        (DAILY, at("2026-01-10T04:00", BERLIN), at("2026-01-11T03:59", BERLIN), None),
        (DAILY, at("2026-01-10T04:00", BERLIN), at("2026-01-11T04:00", BERLIN), "daily"),
        (DAILY, at("2026-01-09T23:00", BERLIN), at("2026-01-10T03:00", BERLIN), None),  # before today's 04:00
        # spring forward (2026-03-29, 02:00 -> 03:00): 04:00 CEST is 02:00 UTC
        (DAILY, at("2026-03-29T01:59", UTC), at("2026-03-29T02:00", UTC), "daily"),
        (DAILY, at("2026-03-29T02:00", UTC), at("2026-03-30T01:59", UTC), None),
        # fall back (2026-10-25, 03:00 -> 02:00): 04:00 CET is 03:00 UTC, 25 hours after the day before's
        (DAILY, at("2026-10-25T02:30", UTC), at("2026-10-25T02:59", UTC), None),
        (DAILY, at("2026-10-25T02:30", UTC), at("2026-10-25T03:00", UTC), "daily"),
        (BOTH, at("2026-01-10T05:00", BERLIN), at("2026-01-10T06:00:01", BERLIN), "idle"),
        (BOTH, at("2026-01-10T03:30", BERLIN), at("2026-01-10T04:10", BERLIN), "daily"),
        (BOTH, at("2026-01-10T01:00", BERLIN), at("2026-01-10T04:10", BERLIN), "idle"),  # both hold: idle first
    ],
)
def test_expiry(policy: ResetPolicy, last: dt.datetime, now: dt.datetime, reason: str | None) -> None:
    result = expiry(policy, last, now)
    assert (result.reason if result else None) == reason


def test_a_daily_boundary_in_the_skipped_hour_is_the_instant_the_clocks_jump() -> None:
    # 02:00 does not exist in Berlin on 2026-03-29: the boundary is 01:00 UTC, when the clocks jump to 03:00
    assert daily_boundary(at("2026-03-29T12:00", UTC), 2, BERLIN) == at("2026-03-29T01:00", UTC)


def test_a_repeated_daily_boundary_is_its_first_occurrence() -> None:
    # 02:00 happens twice in Berlin on 2026-10-25 (00:00 and 01:00 UTC): the first counts, once
    assert daily_boundary(at("2026-10-25T01:30", UTC), 2, BERLIN) == at("2026-10-25T00:00", UTC)


def test_the_detail_is_what_the_chat_reads() -> None:
    idle = expiry(IDLE, at("2026-01-01T00:00"), at("2026-01-02T01:30"))
    daily = expiry(DAILY, at("2026-01-01T00:00"), at("2026-01-02T05:00"))
    assert idle is not None and idle.detail == "idle for 25h30m"
    assert daily is not None and daily.detail == "daily reset at 04:00 Europe/Berlin"


def test_platform_overrides_win_over_the_group_which_wins_over_gated() -> None:
    default = ResetPolicy(mode="idle", idle=60, hour=4, zone="UTC")
    config = {
        "session_reset": "both",
        "session_idle_expiry": 7200,
        "timezone": "Europe/Berlin",
        "session_reset_notice": True,
        "session_reset_platforms": {"telegram": {"mode": "daily", "hour": 6}, "web": {"mode": "none"}},
    }
    group = ResetPolicy(mode="both", idle=7200, hour=4, zone="Europe/Berlin", notice=True)
    assert policy_for(config, "matrix", default) == group
    assert policy_for(config, "telegram", default) == ResetPolicy("daily", 7200, 6, "Europe/Berlin", True)
    assert policy_for(config, "web", default).mode == "none"
    assert policy_for({}, "telegram", default) == default


@pytest.mark.parametrize(
    "config",
    [
        {"session_reset": "weekly"},
        {"session_idle_expiry": -5},
        {"session_idle_expiry": True},
        {"session_reset_hour": 24},
        {"session_reset_hour": "4"},
        {"session_reset_notice": "yes"},
        {"session_reset_platforms": ["telegram"]},
        {"session_reset_platforms": {"telegram": "idle"}},
    ],
)
def test_a_hand_written_value_that_makes_no_sense_counts_as_unset(config: dict[str, object]) -> None:
    default = ResetPolicy(mode="idle", idle=60)
    assert policy_for(config, "telegram", default) == default


def test_the_flush_is_opt_in_with_gated_defaults() -> None:
    default = Flush(DEFAULT_FLUSH_PROMPT, 300.0)
    assert flush_for({}, default) is None and flush_for({"memory_flush": "true"}, default) is None
    assert flush_for({"memory_flush": True}, default) == default
    own = {"memory_flush": True, "memory_flush_prompt": "save it", "memory_flush_timeout": 30}
    assert flush_for(own, default) == Flush("save it", 30.0)


def test_human_duration() -> None:
    seconds = (0, 59, 90, 3600, 86400, 90061)
    assert [human_duration(s) for s in seconds] == ["0s", "59s", "1m30s", "1h", "24h", "25h1m1s"]
