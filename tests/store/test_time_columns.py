"""Times read from SQLite: one parse of the text SQLAlchemy wrote, to the same aware UTC time (issue 13)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from kanmon.store.columns import UTCDateTime

OFFSETS = st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23), max_value=dt.timedelta(hours=23)))
DIALECT = sqlite.dialect()
COLUMN = UTCDateTime().dialect_impl(DIALECT)  # the type as SQLAlchemy runs it on SQLite


def written(value: dt.datetime) -> str:
    """The text SQLAlchemy stores on SQLite for ``value`` through the column type."""
    bind = COLUMN.bind_processor(DIALECT)
    assert bind is not None
    text = bind(value)
    assert isinstance(text, str)
    return text


def read(text: str | None) -> dt.datetime | None:
    process = COLUMN.result_processor(DIALECT, None)
    assert process is not None
    result: dt.datetime | None = process(text)
    return result


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=OFFSETS))
def test_a_time_written_is_read_back_as_the_same_aware_utc_time(value: dt.datetime) -> None:
    back = read(written(value))
    assert back == value and back is not None and back.tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-02 06:13:15", dt.datetime(2026, 12, 2, 6, 13, 15, tzinfo=dt.UTC)),  # CURRENT_TIMESTAMP's form
        ("2026-12-02T06:13:15.000250", dt.datetime(2026, 12, 2, 6, 13, 15, 250, tzinfo=dt.UTC)),
        ("2026-12-02 15:13:15+09:00", dt.datetime(2026, 12, 2, 6, 13, 15, tzinfo=dt.UTC)),
        (None, None),
    ],
)
def test_other_spellings_of_a_time_and_null_are_read_too(text: str | None, expected: dt.datetime | None) -> None:
    back = read(text)
    assert back == expected and (back is None or back.tzinfo == dt.UTC)
