"""The column types and defaults the tables (:mod:`kanmon.store.tables`) are declared with."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, TypeDecorator, text

__all__ = ["SeqType", "UTCDateTime", "empty", "false"]

# SQLite only aliases the rowid (and so autoincrements) for a column declared exactly INTEGER PRIMARY KEY.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend: SQLite has no time zones, so naive values are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: kanmon stores aware UTC times only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def false() -> Any:
    return text("false")


def empty() -> Any:
    # spelled as SQL: a plain "" default reads back from SQLite as "''" and Alembic would report drift forever
    return text("''")
