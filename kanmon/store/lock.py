"""One gated per store (SPEC §14): an exclusive lock held for as long as the daemon runs.

Two gateways polling one store would answer every message twice (NanoClaw's and arizuko's hosts could). The lock is
the operating system's or the database's, never a row a crashed process would leave behind:

- SQLite: an ``flock`` on ``<db>.lock`` beside the database file (the kernel drops it when the process dies, even
  by SIGKILL); who holds it is written to ``<db>.owner`` for the refusal message;
- PostgreSQL: a session-level ``pg_advisory_lock`` on a connection of its own, named after its holder
  (``application_name``) so the refusal can say who it is; the server drops it when that session ends.
"""

from __future__ import annotations

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


class StoreLocked(StoreError):
    """Another gated holds the store."""


class StoreLock:
    """The exclusive lock of one store; ``acquire`` raises :class:`StoreLocked` naming the holder."""

    def __init__(self, engine: Engine, *, instance: str) -> None:
        self._engine = engine
        self.instance = instance
        self.holder = f"gated {instance} (pid {os.getpid()} on {socket.gethostname()})"
        self._file: filelock.BaseFileLock | None = None
        self._connection: Connection | None = None

    def acquire(self) -> None:
        """Take the lock now or raise :class:`StoreLocked`; never waits. Taking a lock already held is a no-op."""
        if self._file is not None or self._connection is not None:
            return
        if self._engine.dialect.name == "sqlite":
            self._acquire_file()
        else:
            self._acquire_advisory()

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._file is not None:
            self._owner_file().unlink(missing_ok=True)
            self._file.release()
            self._file = None
        if self._connection is not None:
            # invalidate, not close: a closed connection goes back to the pool with its session (and lock) alive
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
        database.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(database) + ".lock", timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise StoreLocked(f"the store {database} is in use by {self._file_holder()}") from None
        self._file = lock
        owner = {"holder": self.holder, "instance": self.instance, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        self._owner_file().write_text(json.dumps(owner))

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
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:cls, :obj)"), {"cls": _PG_CLASS, "obj": _PG_OBJECT}
                ).scalar()
                connection.commit()
                if not taken:
                    holder = self._advisory_holder(connection)
                    raise StoreLocked(f"the store {self._engine.url.database} is in use by {holder}")
            except BaseException:
                connection.close()
                raise
        self._connection = connection

    @staticmethod
    def _advisory_holder(connection: Connection) -> str:
        row = connection.execute(
            text(
                "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.classid = :cls AND l.objid = :obj AND l.granted"
            ),
            {"cls": _PG_CLASS, "obj": _PG_OBJECT},
        ).first()
        if row is None:
            return "another gated"
        name, address, since = row
        where = f" from {address}" if address else ""
        return f"{name or 'another gated'}{where}, since {since:%Y-%m-%dT%H:%M:%SZ}"
