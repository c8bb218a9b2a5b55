"""What the Matrix adapter keeps across restarts, in one SQLite file of its own (``<data dir>/adapters/matrix``).

- the sync token, written only once gated has stored every event before it (so a restart neither loses an event
  nor, gated deduplicating on the event id, repeats one);
- the device and access token of a password login (a restart reuses the device, so the homeserver's transaction
  ids keep deduplicating sends);
- the answer to every ``/send`` by its idempotency key, so a retried send is answered without posting again.

This is the adapter's own file, never kanmon's store: adapters talk to gated only over HTTP.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

__all__ = ["AdapterState"]

_SCHEMA = """
create table if not exists kv (key text primary key, value text not null);
create table if not exists sends (key text primary key, event_ids text not null, sent_at real not null);
"""
KEEP_SENDS_SECONDS = 7 * 24 * 3600.0  # gated gives up on a row after delivery.deadline (1 day by default)


class AdapterState:
    """A small key/value and send-record file; safe to use from several threads (one lock, short writes)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / "state.db"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.path.chmod(0o600)  # it may hold an access token
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")  # a token said to be saved survives a power cut
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        with self._lock:
            row = self._db.execute("select value from kv where key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (durably, before returning)."""
        with self._lock:
            self._db.execute("insert or replace into kv (key, value) values (?, ?)", (key, value))

    def sent(self, key: str) -> list[str] | None:
        """The event ids a send with this idempotency key produced, or None if it never completed."""
        with self._lock:
            row = self._db.execute("select event_ids from sends where key = ?", (key,)).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def record_sent(self, key: str, event_ids: list[str], now: float) -> None:
        """Remember what the send with ``key`` produced; records older than a week are dropped."""
        with self._lock:
            self._db.execute(
                "insert or replace into sends (key, event_ids, sent_at) values (?, ?, ?)",
                (key, json.dumps(event_ids), now),
            )
            self._db.execute("delete from sends where sent_at < ?", (now - KEEP_SENDS_SECONDS,))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
