"""What every table of the schema shares: the one MetaData (with stable constraint names) and the column types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData, TypeDecorator, text

__all__ = ["SeqType", "UTCDateTime", "empty_text", "false", "metadata"]

# Stable constraint names, so Alembic can alter them and both backends agree on what exists.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

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

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], dt.datetime | None] | None:
        """On SQLite, one parse straight to the aware time instead of SQLAlchemy's text parse (a regular expression)
        and then :meth:`process_result_value`: a poll reads every row it passes, and this was a fifth of reading one
        (issue 13). Other backends hand over datetimes already: SQLAlchemy's way."""
        if dialect.name == "sqlite":
            return _sqlite_utc
        return super().result_processor(dialect, coltype)


def _sqlite_utc(value: str | None) -> dt.datetime | None:
    """A time as SQLite holds it (text, UTC: SQLAlchemy writes ``YYYY-MM-DD HH:MM:SS.ffffff``), aware."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def false() -> Any:
    return text("false")


def empty_text() -> Any:
    # spelled as SQL: a plain "" default reads back from SQLite as "''" and Alembic would report drift forever
    return text("''")
