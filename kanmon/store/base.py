"""Connection handling shared by the store's parts: read and write transactions, row conversion, upserts."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import operator
import shutil
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Integer, Result, Table, Text, cast, select, update
from sqlalchemy.sql.dml import Insert

from kanmon.clock import Clock, SystemClock
from kanmon.store.engine import WRITE
from kanmon.store.errors import StoreFenced, translate_errors
from kanmon.store.tables import router_state

__all__ = [
    "CONFIG_VERSION_KEY",
    "EPOCH_KEY",
    "KEY_PREFIX_KEY",
    "SERVED_URL_KEY",
    "StoreBase",
    "dialect_insert",
    "from_row",
    "from_rows",
    "upsert_statement",
]

#: ``router_state`` key of the store's lock epoch: bumped by every gated that takes the store (see ``fence``).
EPOCH_KEY = "lock_epoch"
#: ``router_state`` key bumped with every change to groups, routes or channels, so caches (the loop's, the
#: deliverers') notice a change made by another process within a tick.
CONFIG_VERSION_KEY = "config_version"
#: ``router_state`` key of the address the gated holding the store serves HTTP on (``''``: none), for links printed by
#: commands in other processes (``gated group web-token``), which cannot know a ``gated run --http`` elsewhere.
SERVED_URL_KEY = "served_url"
#: ``router_state`` key of the prefix of the store's idempotency keys (``<prefix>-<seq>-…``): the instance name of the
#: first gated that delivered from the store, kept for every gated after it.
KEY_PREFIX_KEY = "idempotency_prefix"

T = TypeVar("T")


# (record class, a result's column names) -> a function making the record from a row of that result, built once per
# query shape: rows become records on every poll, and a row's values by position cost a fifth of its values by name
_BUILDERS: dict[tuple[type, tuple[str, ...]], Callable[[Any], Any]] = {}


def _builder(cls: type[T], columns: tuple[str, ...]) -> Callable[[Any], T]:
    builder = _BUILDERS.get((cls, columns))
    if builder is None:
        builder = _BUILDERS[(cls, columns)] = _make_builder(cls, columns)
    return builder


def _make_builder(cls: type[T], columns: tuple[str, ...]) -> Callable[[Any], T]:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    taken = [(field.name, columns.index(field.name)) for field in fields if field.name in columns]
    plain = not hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    if plain and 1 < len(taken) == len(fields):
        # every field from the row, nothing checked at construction (records are plain frozen dataclasses): fill the
        # instance's __dict__ as its generated __init__ would, without a keyword call and a frozen __setattr__ per
        # field (a 29-field Message: 2.5 µs instead of 10; the loop and every run make thousands)
        names, values = tuple(name for name, _ in taken), operator.itemgetter(*(index for _, index in taken))
        new = object.__new__

        def build(row: Any) -> T:
            record = new(cls)
            record.__dict__.update(zip(names, values(row), strict=True))
            return record

        return build
    return lambda row: cls(**{name: row[index] for name, index in taken})


def from_row(cls: type[T], row: Any) -> T:
    """Build the record ``cls`` (a dataclass) from a result row, taking only the fields the record declares."""
    return _builder(cls, row._fields)(row)


def from_values(cls: type[T], values: Mapping[str, Any]) -> T:
    """Build the record ``cls`` from column values by name (every field of a plain record given: its fast path)."""
    return _builder(cls, tuple(values))(tuple(values.values()))


def from_rows(cls: type[T], result: Result[Any]) -> list[T]:
    """:func:`from_row` for every row of ``result``, with the columns looked up once."""
    build = _builder(cls, tuple(result.keys()))
    return [build(row) for row in result]


class StoreBase:
    """Owns the engine; every operation is one transaction, opened through ``_read`` or ``_write``.

    Time: a method that stamps or compares takes ``now`` from its caller where one is given (gated passes its
    clock's time, so one tick's rows share one stamp and a test's fake clock is the only time there is); otherwise
    it asks ``clock`` (issue 13: the store never reads the wall clock itself). The store uses only ``clock.now()``.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self._engine = engine
        #: Where stamps come from when the caller gives none (a CLI command, a tool); the real clock by default.
        self.clock: Clock = clock or SystemClock()
        self._writer = engine.execution_options(**WRITE)
        # A read of several statements sees one snapshot: PostgreSQL's default (READ COMMITTED) gives each
        # statement its own, so "nothing undecided" and "the newest seq" could describe two different worlds with a
        # row committed in between, and the start cursor skipped that row (the failover test lost a message).
        # Read-only REPEATABLE READ transactions never fail to serialize. SQLite's read transactions are snapshots.
        snapshot = engine.dialect.name == "postgresql"
        self._reader = engine.execution_options(isolation_level="REPEATABLE READ") if snapshot else engine
        # SQLite has one writer at a time. Writers of this process queue here, on a lock that hands over at once,
        # instead of in SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms between tries (the issue 13 profile:
        # 40 % of the time spent waiting for the write lock). Other processes still meet the busy timeout.
        # Reentrant, so that a caller holding it (:meth:`writer_turn`) can write through the store's methods.
        self._write_lock: threading.RLock | contextlib.nullcontext[None] = (
            threading.RLock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        #: The lock epoch this store's gated holds (``None``: not fenced, e.g. a CLI command). Fenced writes check
        #: it inside their own transaction and raise :class:`StoreFenced` once another gated has bumped it.
        self.fence: int | None = None

    def _stamp(self, now: dt.datetime | None) -> dt.datetime:
        """``now`` when the caller gave one, else the store clock's time: what every stamp of the store is."""
        return now or self.clock.now()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def pool_size(self) -> int:
        """How many connections the engine's pool keeps (5 when the pool does not say)."""
        size = getattr(self._engine.pool, "size", None)
        return int(size()) if callable(size) else 5

    def _sqlite_file(self) -> Path | None:
        """The file of an SQLite store; None for a server, or SQLite in memory."""
        database = self._engine.url.database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database)

    def free_space(self) -> int | None:
        """Bytes free on the file system that holds an SQLite store (None for a server, whose disk is its own)."""
        database = self._sqlite_file()
        return None if database is None else shutil.disk_usage(database.parent).free

    def exposed_files(self) -> list[str]:
        """The SQLite store's file and folder when other local users may read them, as ``PATH (mode 0644)``; [] when
        neither is (and on a server). A new store is made private (:func:`~kanmon.store.engine.create_private_file`);
        one made before, or by hand, keeps its modes, and gated says so at start."""
        database = self._sqlite_file()
        if database is None:
            return []
        exposed = []
        for path in (database, database.parent):
            with contextlib.suppress(OSError):
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    exposed.append(f"{path} (mode {mode:04o})")
        return exposed

    @property
    def engine(self) -> Engine:
        """The engine, for migrations and tests; nothing outside kanmon.store should run SQL on it."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction, ended by COMMIT rather than ROLLBACK (the same for a read): psycopg forgets every
        statement it prepared on a connection at each ROLLBACK (the server could have dropped what they name), so
        with reads rolled back, gated's statements were seldom prepared at all (issue 13: ``bench/throughput.py`` on
        PostgreSQL, 1,570 → 1,811 msg/s). A read that raises still rolls back."""
        with translate_errors(), self._reader.begin() as conn:
            yield conn

    def writer_turn(self) -> contextlib.AbstractContextManager[object]:
        """This process's turn to write, held by the calling thread across the store calls it makes inside.

        SQLite has one writer at a time, and this process's writers take turns here (see ``_write_lock``); on
        PostgreSQL writers do not wait for each other and this holds nothing. A group commit
        (:class:`kanmon.store.aio.GroupCommit`) takes its batch once it holds the turn, so the writes that arrived
        while it waited go in the same transaction.
        """
        return self._write_lock

    @contextmanager
    def _write(self, *, fenced: bool = False, config: bool = False) -> Iterator[Connection]:
        """A write transaction. ``fenced`` ones (routing, runs, delivery) first check that this gated still holds
        the store (SPEC §14), so a gated that lost its lock to another can no longer change anything; ``config``
        ones (groups, routes, channels) bump the configuration version that caches watch."""
        with self._write_lock, translate_errors(), self._writer.begin() as conn:
            if fenced and self.fence is not None:
                self._check_fence(conn, self.fence)
            yield conn
            if config:
                self._config_changed(conn)

    def _config_changed(self, conn: Connection) -> None:
        """Bump the configuration version inside ``conn``'s transaction (groups, routes or channels changed)."""
        key = router_state.c.key == CONFIG_VERSION_KEY
        if conn.execute(update(router_state).where(key).values(value=_plus_one(router_state.c.value))).rowcount == 0:
            conn.execute(self._upsert(router_state, {"key": CONFIG_VERSION_KEY, "value": "1"}, ["key"]))

    def _check_fence(self, conn: Connection, epoch: int) -> None:
        # FOR SHARE on PostgreSQL: a taker's bump waits until this transaction ends, and this one then sees it
        query = _EPOCH_FOR_SHARE if self.dialect == "postgresql" else _EPOCH
        current = conn.execute(query).scalar()
        if current is None or int(current) != epoch:
            raise StoreFenced(f"another gated took the store over (lock epoch {current}, ours {epoch})")

    def _insert(self, table: Table) -> Any:
        """This backend's INSERT (with ``on_conflict_…``); the other backend's dialect is never imported."""
        return dialect_insert(self.dialect, table)

    def _upsert(self, table: Table, values: Mapping[str, Any], keys: Sequence[str]) -> Insert:
        """INSERT … ON CONFLICT (keys) DO UPDATE SET the other values, in this backend's dialect."""
        stmt = self._insert(table).values(**values)
        updates = {name: stmt.excluded[name] for name in values if name not in keys}
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[no-any-return]
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)  # type: ignore[no-any-return]


def dialect_insert(dialect: str, table: Table) -> Any:
    """``dialect``'s INSERT of ``table`` (with ``on_conflict_…``); the other backend's dialect is never imported."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


@functools.cache
def upsert_statement(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Insert:
    """A reusable ``INSERT … ON CONFLICT (keys) DO UPDATE SET columns = excluded.columns`` in ``dialect``.

    Executed with one parameter per column of the row (``conn.execute(statement, {"jid": …, …})``). Built once:
    a statement object used again skips SQLAlchemy's construction and cache-key work, which the issue 13 profile
    found to be most of a run's bookkeeping time.
    """
    stmt = dialect_insert(dialect, table)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in columns}
    )


_EPOCH = select(router_state.c.value).where(router_state.c.key == EPOCH_KEY)
_EPOCH_FOR_SHARE = _EPOCH.with_for_update(read=True)


def _plus_one(value: Any) -> Any:
    """``value + 1`` for a number kept as text (``router_state.value``), in SQL."""
    return cast(cast(value, Integer) + 1, Text)
