"""Connection handling shared by the store's parts: read and write transactions, row conversion, upserts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from kanmon.store.engine import WRITE
from kanmon.store.errors import translate_errors

__all__ = ["StoreBase", "from_row", "utcnow"]

T = TypeVar("T")


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


# record class -> its field names, computed once: from_row runs for every row of every poll
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def from_row(cls: type[T], row: Any) -> T:
    """Build the record ``cls`` from a result row, taking only the fields the record declares."""
    mapping = row._mapping
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return cls(**{name: mapping[name] for name in names if name in mapping})


class StoreBase:
    """Owns the engine; every operation is one transaction, opened through ``_read`` or ``_write``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**WRITE)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The engine, for migrations and tests; nothing outside kanmon.store should run SQL on it."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with translate_errors(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(), self._writer.begin() as conn:
            yield conn

    def _upsert(self, table: Table, values: Mapping[str, Any], keys: Sequence[str]) -> Insert:
        """INSERT … ON CONFLICT (keys) DO UPDATE SET the other values, in this backend's dialect."""
        module: Any = sqlite if self.dialect == "sqlite" else postgresql
        stmt = module.insert(table).values(**values)
        updates = {name: stmt.excluded[name] for name in values if name not in keys}
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[no-any-return]
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)  # type: ignore[no-any-return]
