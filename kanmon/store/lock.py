"""One gated per store (SPEC §14): an exclusive lock held for as long as the daemon runs.

Two gateways polling one store would answer every message twice (NanoClaw's and arizuko's hosts could). The lock is
the operating system's or the database's, never a row a crashed process would leave behind:

- SQLite: an ``flock`` on ``<db>.lock`` beside the database file (the kernel drops it when the process dies, even
  by SIGKILL); who holds it is written to ``<db>.owner`` for the refusal message;
- PostgreSQL: a session-level ``pg_advisory_lock`` on a connection of its own, named after its holder
  (``application_name``) so the refusal can say who it is; the server drops it when that session ends. The session
  asks the server for TCP keepalives of a few seconds, so a holder whose host vanished (no FIN, no RST) loses the
  lock within about ten seconds instead of the kernel's default two hours.

A lock can be lost while its holder lives: a database restart ends every session, advisory locks included, and a
deleted lock file lets the next ``flock`` succeed on a new file. :meth:`StoreLock.check` tells; the daemon checks
every ``store.lock_check_interval`` and fences itself (:mod:`kanmon.gated.guard`), and the store's epoch
(:meth:`kanmon.store.Store.take_epoch`) makes the fence hold inside the database too.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import filelock
from sqlalchemy import Connection, Engine, text

from kanmon.store.errors import StoreError, translate_errors

__all__ = ["StoreLock", "StoreLocked"]

# pg_advisory_lock(classid, objid): "kanm" and 1, so pg_locks shows a pair a DBA can recognise.
_PG_CLASS = 0x6B616E6D
_PG_OBJECT = 1
# The lock session's server-side TCP keepalives (seconds): a vanished holder is dropped after about 5 + 2 × 3 s.
_KEEPALIVE = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}
# A check that gets no answer within this long counts as a lost lock (a server that hangs is no better).
_CHECK_TIMEOUT_MS = 5000


class StoreLocked(StoreError):
    """Another gated holds the store."""


class StoreLock:
    """The exclusive lock of one store; ``acquire`` raises :class:`StoreLocked` naming the holder."""

    def __init__(self, engine: Engine, *, instance: str) -> None:
        self._engine = engine
        self.instance = instance
        self.holder = f"gated {instance} (pid {os.getpid()} on {socket.gethostname()})"
        self._file: filelock.BaseFileLock | None = None
        self._inode: int | None = None
        self._connection: Connection | None = None

    def held_by(self) -> str | None:
        """Who holds this store's lock now, as the holder named itself, or None when no gated does. Takes nothing.

        SQLite: a ``flock`` on the lock file in ``/proc/locks`` (Linux; elsewhere None); PostgreSQL: the advisory
        lock in ``pg_locks`` (raises :class:`StoreError` when the server cannot be reached)."""
        if self._engine.dialect.name == "sqlite":
            return self._file_holder() if _flocked(self._lock_file()) else None
        with translate_errors(), self._engine.connect() as connection:
            return self._advisory_holder(connection)

    def acquire(self) -> None:
        """Take the lock now or raise :class:`StoreLocked`; never waits. Taking a lock already held is a no-op."""
        if self._file is not None or self._connection is not None:
            return
        if self._engine.dialect.name == "sqlite":
            self._acquire_file()
        else:
            self._acquire_advisory()

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release` (or the discovery of a loss)."""
        return self._file is not None or self._connection is not None

    def check(self) -> str | None:
        """``None`` while the lock is still this holder's; else why it is lost (and it is then released).

        Blocks for at most a few seconds (a query on the lock's own session, or a ``stat``).
        """
        if self._file is not None:
            problem = self._check_file()
        elif self._connection is not None:
            problem = self._check_advisory()
        else:
            return "the lock is not held"
        if problem is not None:
            self.release()
        return problem

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._file is not None:
            if self._check_file() is None:  # never remove the owner file of a lock file that is not ours any more
                self._owner_file().unlink(missing_ok=True)
            self._file.release()
            self._file = None
            self._inode = None
        if self._connection is not None:
            # invalidate, not close: a closed connection goes back to the pool with its session (and lock) alive
            with contextlib.suppress(Exception):
                self._connection.invalidate()
            self._connection = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------------ SQLite
    def _database(self) -> Path:
        database = self._engine.url.database
        if not database or database == ":memory:":
            raise StoreError("an in-memory SQLite store cannot be shared, so it takes no lock")
        return Path(database)

    def _owner_file(self) -> Path:
        return self._database().with_name(self._database().name + ".owner")

    def _acquire_file(self) -> None:
        database = self._database()
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the store makes it (engine.py)
        lock = filelock.FileLock(str(self._lock_file()), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise StoreLocked(f"the store {database} is in use by {self._file_holder()}") from None
        self._file = lock
        self._inode = self._lock_file().stat().st_ino
        owner = {"holder": self.holder, "instance": self.instance, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        self._owner_file().write_text(json.dumps(owner))

    def _lock_file(self) -> Path:
        return self._database().with_name(self._database().name + ".lock")

    def _check_file(self) -> str | None:
        # flock cannot be taken from us, but a lock file removed (or replaced) lets the next gated lock a new one
        try:
            inode = self._lock_file().stat().st_ino
        except OSError:
            return f"the lock file {self._lock_file()} was removed"
        if inode != self._inode:
            return f"the lock file {self._lock_file()} was replaced"
        return None

    def _file_holder(self) -> str:
        try:
            owner: dict[str, Any] = json.loads(self._owner_file().read_text())
        except (OSError, ValueError):
            return "another gated"
        return f"{owner.get('holder', 'another gated')}, since {owner.get('since', '?')}"

    # ------------------------------------------------------------------------------------------------ PostgreSQL
    def _acquire_advisory(self) -> None:
        with translate_errors():
            connection = self._engine.connect()
            try:
                connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": self.holder})
                for name, value in {**_KEEPALIVE, "statement_timeout": str(_CHECK_TIMEOUT_MS)}.items():
                    connection.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value})
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:cls, :obj)"), {"cls": _PG_CLASS, "obj": _PG_OBJECT}
                ).scalar()
                connection.commit()
                if not taken:
                    holder = self._advisory_holder(connection) or "another gated"
                    raise StoreLocked(f"the store {self._engine.url.database} is in use by {holder}")
            except BaseException:
                connection.close()
                raise
        self._connection = connection

    def _check_advisory(self) -> str | None:
        assert self._connection is not None
        try:
            with translate_errors():
                held = self._connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :cls "
                        "AND objid = :obj AND pid = pg_backend_pid() AND granted"
                    ),
                    {"cls": _PG_CLASS, "obj": _PG_OBJECT},
                ).scalar()
                self._connection.commit()
        except StoreError as exc:
            return f"the lock's database session ended ({exc})"
        return None if held else "the database no longer holds the lock for this session"

    @staticmethod
    def _advisory_holder(connection: Connection) -> str | None:
        row = connection.execute(
            text(
                "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.classid = :cls AND l.objid = :obj AND l.granted "
                # advisory locks are per database: other kanmon stores on this server hold the same key
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"cls": _PG_CLASS, "obj": _PG_OBJECT},
        ).first()
        if row is None:
            return None
        name, address, since = row
        where = f" from {address}" if address else ""
        return f"{name or 'another gated'}{where}, since {since:%Y-%m-%dT%H:%M:%SZ}"


def _flocked(path: Path) -> bool:
    """Whether some process holds a ``flock`` on ``path``: Linux lists every lock in ``/proc/locks`` as
    ``N: FLOCK ADVISORY WRITE PID MAJOR:MINOR:INODE 0 EOF`` (device numbers in hex). False when either is missing."""
    try:
        status = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    return any("FLOCK" in fields and device in fields for fields in map(str.split, table.splitlines()))
