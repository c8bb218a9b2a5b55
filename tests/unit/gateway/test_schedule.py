"""Task schedules (issue 15): every kind, DST both ways in two zones, month ends, leap days, missed policies."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kanmon.errors import InvalidInput
from kanmon.gateway.schedule import (
    MissedPolicy,
    Schedule,
    _cron_next_near_change,
    due_occurrences,
    format_duration,
    occurrence_id,
    parse_at,
    parse_duration,
    parse_schedule,
)

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(schedule: Schedule, start: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    out, at = [], schedule.next_after(start)
    while at is not None and at <= until:
        out.append(at)
        at = schedule.next_after(at)
    return out


def local(instants: list[dt.datetime], zone: ZoneInfo) -> list[str]:
    return [instant.astimezone(zone).strftime("%m-%d %H:%M %Z") for instant in instants]


# ------------------------------------------------------------------------------------------------ durations, times
@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("1w", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "h", "1x", "0m", "-1h", "1h 30m", "1.5h", "m5"])
def test_bad_durations_are_one_clear_error(text: str) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**9))
def test_a_formatted_duration_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=12))
def test_any_text_is_a_duration_or_one_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        assert parse_duration(text) > 0


NOW = utc(2026, 11, 30, 8, 0)


def test_at_times() -> None:
    assert parse_at("+2h", BERLIN, NOW) == utc(2026, 11, 30, 10, 0)
    assert parse_at("2026-12-01T09:00", BERLIN, NOW) == utc(2026, 12, 1, 8, 0)  # wall time in the zone
    assert parse_at("2026-12-01T09:00Z", BERLIN, NOW) == utc(2026, 12, 1, 9, 0)
    assert parse_at("2026-12-01T09:00-05:00", BERLIN, NOW) == utc(2026, 12, 1, 14, 0)
    # a skipped wall time is read at the offset before the jump: 02:30 CET = 03:30 CEST
    assert parse_at("2027-03-28T02:30", BERLIN, NOW) == utc(2027, 3, 28, 1, 30)


@pytest.mark.parametrize("text", ["yesterday", "2026-11-30T07:00Z", "+0m", "2026-13-01T00:00", "+"])
def test_bad_or_past_at_times(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_at(text, BERLIN, NOW)


@given(st.datetimes(min_value=dt.datetime(2026, 12, 1), max_value=dt.datetime(2035, 1, 1)))
def test_an_iso_wall_time_is_that_wall_time_in_the_zone(wall: dt.datetime) -> None:
    at = parse_at(wall.replace(microsecond=0).isoformat(), NEW_YORK, NOW)
    back = at.astimezone(NEW_YORK).replace(tzinfo=None)
    gap = back - wall.replace(microsecond=0)
    assert gap in (dt.timedelta(0), dt.timedelta(hours=1))  # an hour later only in the skipped hour


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kind", "text", "zone", "error"),
    [
        ("cron", "61 * * * *", "UTC", "a field is out of range or malformed"),  # five fields, one of them bad
        ("cron", "* * * *", "UTC", "cron expression"),
        ("cron", "0 0 * * * *", "UTC", "cron expression"),
        ("cron", "0 0 31 2 *", "UTC", "never fires"),
        ("cron", "0 9 * * *", "Mars/Olympus", "time zone"),
        ("cron", "0 9 * * *", "../etc/passwd", "time zone"),
        ("every", "30s", "UTC", "too short"),
        ("every", "soon", "UTC", "duration"),
        ("at", "2020-01-01T00:00Z", "UTC", "not in the future"),
        # numbers past what a date can be: once OverflowError out of an agent's action or `gated task add`
        ("every", "600000w", "UTC", "too long"),
        ("every", "99999999999w", "UTC", "too long"),
        ("at", "+600000w", "UTC", "too long"),
        ("at", "9999-12-31T23:59:59", "America/New_York", "too far"),
    ],
)
def test_bad_schedules(kind: str, text: str, zone: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        parse_schedule(kind, text, zone=zone, now=NOW)  # type: ignore[arg-type]


def test_every_counts_from_its_anchor() -> None:
    schedule, first = parse_schedule("every", "2h", zone="UTC", now=utc(2026, 11, 30, 8, 0, 0))
    assert first == utc(2026, 11, 30, 10, 0)
    assert fires(schedule, first, utc(2026, 11, 30, 16, 0)) == [utc(2026, 11, 30, h) for h in (12, 14, 16)]
    assert schedule.next_after(utc(2026, 11, 30, 13, 59, 59)) == utc(2026, 11, 30, 14, 0)


def test_every_ignores_dst() -> None:
    schedule, first = parse_schedule("every", "1h", zone="Europe/Berlin", now=utc(2027, 3, 27, 23, 0))
    assert [first, *fires(schedule, first, utc(2027, 3, 28, 3, 0))] == [utc(2027, 3, 28, h) for h in range(4)]


def test_at_fires_once() -> None:
    schedule, first = parse_schedule("at", "+90m", zone="UTC", now=NOW)
    assert first == utc(2026, 11, 30, 9, 30)
    assert schedule.next_after(first) is None


# ------------------------------------------------------------------------------------------------ DST
@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # clocks go forward 02:00 -> 03:00: the 02:30 that does not exist fires once, at 03:30
        (BERLIN, (2027, 3, 28), ["03-27 02:30 CET", "03-28 03:30 CEST", "03-29 02:30 CEST"]),
        (NEW_YORK, (2027, 3, 14), ["03-13 02:30 EST", "03-14 03:30 EDT", "03-15 02:30 EDT"]),
        # clocks go back 03:00 -> 02:00 (Berlin), 02:00 -> 01:00 (New York): the repeated time fires once
        (BERLIN, (2027, 10, 31), ["10-30 02:30 CEST", "10-31 02:30 CEST", "11-01 02:30 CET"]),
        (NEW_YORK, (2027, 11, 7), ["11-06 02:30 EDT", "11-07 02:30 EST", "11-08 02:30 EST"]),
    ],
)
def test_a_daily_0230_fires_once_each_day_across_dst(
    zone: ZoneInfo, day: tuple[int, int, int], expected: list[str]
) -> None:
    schedule = Schedule("cron", "30 2 * * *", str(zone))
    middle = dt.datetime(*day, 12, tzinfo=zone)
    got = fires(schedule, middle - dt.timedelta(days=1, hours=12), middle + dt.timedelta(days=1, hours=12))
    assert local(got, zone) == expected


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK])
def test_a_repeated_0130_fires_once(zone: ZoneInfo) -> None:
    schedule = Schedule("cron", "30 1 * * *", str(zone))
    got = fires(schedule, utc(2027, 11, 6, 12), utc(2027, 11, 8, 12))
    assert len(got) == 2 and len({g.astimezone(zone).date() for g in got}) == 2


@pytest.mark.parametrize(("zone", "day"), [(BERLIN, (2027, 3, 28)), (NEW_YORK, (2027, 3, 14))])
def test_hourly_on_the_short_day_fires_23_times(zone: ZoneInfo, day: tuple[int, int, int]) -> None:
    schedule = Schedule("cron", "0 * * * *", str(zone))
    start = dt.datetime(*day, tzinfo=zone)
    got = fires(schedule, start - dt.timedelta(seconds=1), dt.datetime(*day, 23, 59, tzinfo=zone))
    assert len(got) == 23 and len(set(got)) == 23


@pytest.mark.parametrize(("zone", "day"), [(BERLIN, (2027, 10, 31)), (NEW_YORK, (2027, 11, 7))])
def test_every_quarter_hour_on_the_long_day_fires_by_elapsed_time(zone: ZoneInfo, day: tuple[int, int, int]) -> None:
    schedule = Schedule("cron", "*/15 * * * *", str(zone))
    start = dt.datetime(*day, tzinfo=zone)
    got = fires(schedule, start - dt.timedelta(seconds=1), dt.datetime(*day, 23, 59, tzinfo=zone))
    assert len(got) == 25 * 4
    assert all(later - earlier == dt.timedelta(minutes=15) for earlier, later in itertools.pairwise(got))


@pytest.mark.parametrize(("zone", "day"), [(BERLIN, (2027, 3, 28)), (NEW_YORK, (2027, 3, 14))])
def test_every_quarter_hour_on_the_short_day_never_repeats_an_instant(
    zone: ZoneInfo, day: tuple[int, int, int]
) -> None:
    schedule = Schedule("cron", "*/15 * * * *", str(zone))
    start = dt.datetime(*day, tzinfo=zone)
    got = fires(schedule, start - dt.timedelta(seconds=1), dt.datetime(*day, 23, 59, tzinfo=zone))
    assert len(got) == 23 * 4 and got == sorted(set(got))


# ------------------------------------------------------------------------------------------------ month ends, leap days
def test_the_31st_fires_only_in_months_that_have_one() -> None:
    schedule = Schedule("cron", "0 9 31 * *", "Europe/Berlin")
    got = fires(schedule, utc(2027, 1, 1), utc(2027, 12, 31, 23))
    assert [instant.astimezone(BERLIN).month for instant in got] == [1, 3, 5, 7, 8, 10, 12]
    assert all(instant.astimezone(BERLIN).hour == 9 for instant in got)


def test_february_29th_fires_in_leap_years_only() -> None:
    schedule = Schedule("cron", "0 12 29 2 *", "America/New_York")
    got = fires(schedule, utc(2026, 1, 1), utc(2037, 1, 1))
    assert [instant.year for instant in got] == [2028, 2032, 2036]
    assert all(instant.astimezone(NEW_YORK).strftime("%m-%d %H:%M") == "02-29 12:00" for instant in got)


def test_the_last_day_of_february() -> None:
    schedule = Schedule("cron", "0 0 28,29 2 *", "UTC")
    assert fires(schedule, utc(2027, 2, 1), utc(2028, 3, 1)) == [utc(2027, 2, 28), utc(2028, 2, 28), utc(2028, 2, 29)]


# ------------------------------------------------------------------------------------------------ cron invariants
_EXPRESSIONS = ["30 2 * * *", "0 * * * *", "*/15 * * * *", "0 9 * * 1-5", "15 1,2,3 * * *", "0 0 1 * *", "*/7 2 * * 0"]
_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_EXPRESSIONS),
    st.sampled_from(_ZONES),
    st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_cron_next_fire_invariants(expression: str, zone: str, after: dt.datetime) -> None:
    """The next fire lies after ``after``, in whole seconds, matches the expression's minute, and is the same as the
    careful search finds; the one after it is later still."""
    after = after.replace(microsecond=0)
    schedule = Schedule("cron", expression, zone)
    first = schedule.next_after(after)
    assert first is not None and first > after and first.microsecond == 0 and first.second == 0
    assert first == _cron_next_near_change(expression, ZoneInfo(zone), after, expression.split()[1] == "*")
    assert first - after <= dt.timedelta(days=32)
    second = schedule.next_after(first)
    assert second is not None and second > first


# ------------------------------------------------------------------------------------------------ missed policies
HOURLY = Schedule("cron", "0 * * * *", "UTC")


@pytest.mark.parametrize(
    ("policy", "fire", "skipped"),
    [
        ("latest", [utc(2026, 11, 30, 11)], 2),
        ("skip", [], 3),
        ("all", [utc(2026, 11, 30, h) for h in (9, 10, 11)], 0),
    ],
)
def test_three_missed_periods(policy: MissedPolicy, fire: list[dt.datetime], skipped: int) -> None:
    due = due_occurrences(
        HOURLY,
        utc(2026, 11, 30, 9),
        utc(2026, 11, 30, 11, 30),
        policy=policy,
        grace=60,
        cap=10,
    )
    assert list(due.fire) == fire and due.skipped == skipped and due.next_fire_at == utc(2026, 11, 30, 12)


def test_all_is_capped_to_the_newest() -> None:
    due = due_occurrences(HOURLY, utc(2026, 11, 30, 0), utc(2026, 11, 30, 23, 59), policy="all", grace=60, cap=3)
    assert list(due.fire) == [utc(2026, 11, 30, h) for h in (21, 22, 23)] and due.skipped == 21


@pytest.mark.parametrize("policy", ["latest", "skip", "all"])
def test_an_occurrence_on_time_fires_under_every_policy(policy: MissedPolicy) -> None:
    due = due_occurrences(HOURLY, utc(2026, 11, 30, 9), utc(2026, 11, 30, 9, 0, 1), policy=policy, grace=60, cap=10)
    assert list(due.fire) == [utc(2026, 11, 30, 9)] and due.skipped == 0


def test_a_long_outage_is_not_walked_minute_by_minute_forever() -> None:
    minutely = Schedule("cron", "* * * * *", "UTC")
    due = due_occurrences(minutely, utc(2026, 1, 1), utc(2026, 11, 30, 8, 0, 30), policy="latest", grace=60, cap=10)
    assert due.fire == (utc(2026, 11, 30, 8, 0),) and due.next_fire_at == utc(2026, 11, 30, 8, 1)
    assert 1000 < due.skipped < 2000  # walked a thousand, then jumped close to now: the gap counts as one


def test_occurrence_ids() -> None:
    instant = dt.datetime(2026, 11, 30, 10, 0, tzinfo=BERLIN)
    assert occurrence_id(7, instant) == "task:7:2026-11-30T09:00:00Z"
    assert occurrence_id(7, instant, manual=True) == "task:7:manual:2026-11-30T09:00:00Z"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_EXPRESSIONS),
    st.sampled_from(["latest", "skip", "all"]),
    st.integers(min_value=0, max_value=3 * 86400),
    st.integers(min_value=1, max_value=5),
)
def test_missed_occurrences_invariants(expression: str, policy: MissedPolicy, down: int, cap: int) -> None:
    """Whatever the downtime: what fires is due, in order, once, at most ``cap`` (one for latest and skip); fired and
    skipped add up to what was due; the next occurrence lies after now."""
    schedule = Schedule("cron", expression, "Europe/Berlin")
    first = schedule.next_after(NOW)
    assert first is not None
    now = first + dt.timedelta(seconds=down)
    due = due_occurrences(schedule, first, now, policy=policy, grace=60, cap=cap)
    assert list(due.fire) == sorted(set(due.fire)) and all(first <= instant <= now for instant in due.fire)
    assert len(due.fire) <= (cap if policy == "all" else 1)
    assert due.next_fire_at is not None and due.next_fire_at > now
    assert len(due.fire) + due.skipped == len(fires(schedule, first - dt.timedelta(seconds=1), now))
