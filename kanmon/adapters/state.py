"""What an adapter keeps across restarts, in a directory of its own: where its platform's updates resume, and what it
has already sent for each idempotency key gated used.

* The **offset** (Telegram's next ``update_id``) is one small file, replaced atomically (written beside, fsynced,
  renamed), and written only after gated has stored the update: a crash re-reads at most the updates gated already
  has, and gated's idempotent ingest (``(chat_jid, id)``) drops those. It names the bot it belongs to
  (``{"bot": <getMe id>, "offset": <n>}``): update ids are each bot's own sequence, and another bot's offset given
  to ``getUpdates`` would confirm, that is drop, every update of this bot below it. :meth:`AdapterState.claim_offset`
  keeps it only for its own bot; another bot's, or one an older adapter wrote without a bot (a bare number), is
  dropped and polling starts afresh (Telegram then sends what it still holds, which gated stores once).
* The **sent journal** maps gated's ``Idempotency-Key`` to the platform message ids of what was posted for it, one
  JSON line per posted part, fsynced before ``/send`` answers. A retried ``/send`` (gated never got the answer, or the
  adapter restarted) resends only the parts not in the journal, so a reply is never posted twice. It is compacted
  on start: keys older than ``keep_seconds`` (gated stops retrying after ``delivery.deadline``, 24 h) are dropped.

A lock file keeps a second adapter process off the same directory (:class:`StateBusy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from kanmon.errors import InvalidInput

__all__ = ["AdapterState", "SentPart", "StateBusy"]

KEEP_SECONDS = 7 * 24 * 3600.0


class StateBusy(InvalidInput):
    """Another adapter process holds the state directory."""


@dataclass(frozen=True, slots=True)
class SentPart:
    """One posted part of a reply: its index among the reply's parts and the platform's message id."""

    index: int
    message_id: str


@dataclass
class AdapterState:
    """The state directory of one adapter (created if missing); :meth:`open` takes its lock."""

    directory: Path
    keep_seconds: float = KEEP_SECONDS
    offset: int | None = None
    offset_bot: int | None = None  # the bot (Telegram's getMe id) the offset was saved for; None: not known
    _sent: dict[str, list[SentPart]] = field(default_factory=dict)
    _times: dict[str, float] = field(default_factory=dict)
    _lock: FileLock | None = None

    @property
    def offset_path(self) -> Path:
        """The file holding the next update offset."""
        return self.directory / "offset"

    @property
    def journal_path(self) -> Path:
        """The append-only sent journal (JSON lines)."""
        return self.directory / "sent.jsonl"

    def open(self) -> AdapterState:
        """Lock the directory (:class:`StateBusy` if another process has it), then load the offset and journal."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = FileLock(self.directory / "lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StateBusy(f"another adapter process uses {self.directory}") from None
        self._lock = lock
        if self.offset_path.exists():
            self.offset_bot, self.offset = _saved_offset(self.offset_path.read_text())
        self._load_journal()
        return self

    def close(self) -> None:
        """Release the directory's lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------------------------------------ the offset
    def claim_offset(self, bot: int) -> bool:
        """Keep the saved offset only if it was saved for ``bot`` (its getMe id); else forget it, so the next
        ``getUpdates`` starts afresh. Returns whether an offset was forgotten."""
        if self.offset is None or self.offset_bot == bot:
            self.offset_bot = bot
            return False
        self.offset_bot, self.offset = bot, None
        return True

    def save_offset(self, offset: int, bot: int) -> None:
        """Persist ``offset`` of ``bot`` atomically (written beside, fsynced, renamed over the old file)."""
        self._write_offset(offset, bot)
        self.offset_bot, self.offset = bot, offset

    async def keep_offset(self, offset: int, bot: int) -> None:
        """:meth:`save_offset` from an event loop: the file is written and fsynced on a worker thread (the loop never
        waits for the disk), and the offset counts once it is on disk."""
        await asyncio.to_thread(self._write_offset, offset, bot)
        self.offset_bot, self.offset = bot, offset

    def _write_offset(self, offset: int, bot: int) -> None:
        temporary = self.offset_path.with_suffix(".tmp")
        with temporary.open("w") as out:
            out.write(json.dumps({"bot": bot, "offset": offset}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.offset_path)

    # ------------------------------------------------------------------------------------------------ the journal
    def sent(self, key: str) -> list[SentPart]:
        """The parts already posted for idempotency key ``key``, by index."""
        return list(self._sent.get(key, ()))

    def record_sent(self, key: str, part: SentPart) -> None:
        """Remember that ``part`` of ``key``'s reply was posted; on disk (fsynced) before this returns. Raises
        OSError when the journal cannot be written (a full disk); the part is then not remembered."""
        at = time.time()
        self._append(key, part, at)
        self._add(key, part, at)

    async def remember_sent(self, key: str, part: SentPart) -> None:
        """:meth:`record_sent` from an event loop: remembered at once, then written and fsynced on a worker thread
        (the loop never waits for the disk; sends of other chats go on meanwhile), on disk when this returns. Raises
        OSError when the line could not be written: the part is then remembered only until the process ends. A send
        cancelled while it waits for the disk has its part remembered all the same: a retry never posts it again."""
        at = time.time()
        self._add(key, part, at)
        await asyncio.to_thread(self._append, key, part, at)

    def _append(self, key: str, part: SentPart, at: float) -> None:
        line = json.dumps({"key": key, "index": part.index, "id": part.message_id, "at": at})
        with self.journal_path.open("a") as out:  # one write() of one line, appended: lines of two threads never mix
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _add(self, key: str, part: SentPart, at: float) -> None:
        parts = self._sent.setdefault(key, [])
        if all(known.index != part.index for known in parts):
            parts.append(part)
            parts.sort(key=lambda known: known.index)
        self._times[key] = max(self._times.get(key, 0.0), at)

    def _load_journal(self) -> None:
        if not self.journal_path.exists():
            return
        for line in self.journal_path.read_text(errors="replace").splitlines():
            entry = _entry(line)
            if entry is not None:
                self._add(entry["key"], SentPart(entry["index"], entry["id"]), entry["at"])
        cutoff = time.time() - self.keep_seconds
        for key in [key for key, at in self._times.items() if at < cutoff]:
            del self._sent[key], self._times[key]
        self._rewrite_journal()

    def _rewrite_journal(self) -> None:
        temporary = self.journal_path.with_suffix(".tmp")
        with temporary.open("w") as out:
            for key, parts in self._sent.items():
                for part in parts:
                    entry = {"key": key, "index": part.index, "id": part.message_id, "at": self._times[key]}
                    out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.journal_path)


def _saved_offset(text: str) -> tuple[int | None, int | None]:
    """The bot and offset of an offset file: ``{"bot", "offset"}``, or an older adapter's bare number (no bot);
    ``(None, None)`` for anything else."""
    text = text.strip()
    if text.isdigit():
        return None, int(text)
    saved: Any = None
    with contextlib.suppress(ValueError):
        saved = json.loads(text)
    if not isinstance(saved, dict):
        return None, None
    bot, offset = saved.get("bot"), saved.get("offset")
    if type(bot) is not int or type(offset) is not int:
        return None, None
    return bot, offset


def _entry(line: str) -> dict[str, Any] | None:
    """One journal line, or None for a line a crash cut short."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not isinstance(entry.get("id"), str):
        return None
    if not isinstance(entry.get("index"), int) or not isinstance(entry.get("at"), int | float):
        return None
    return entry
