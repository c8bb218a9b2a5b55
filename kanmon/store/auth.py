"""Sender authorisation's tables (issue 16 item 1): the allowlist, DM pairing codes and the refused senders.

Policy (who is allowed, how codes are made and compared, windows and limits) lives in :mod:`kanmon.gateway.auth`
and :mod:`kanmon.gateway.pairing`; here each operation is one transaction. Allowlist writes bump the configuration
version, so the loop's cached copy (:class:`kanmon.gateway.registry.Registry`) is re-read at its next tick.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from kanmon.store.appends import append_message, lock_appends
from kanmon.store.base import StoreBase, from_row, from_rows
from kanmon.store.errors import NotFound
from kanmon.store.records import NewMessage
from kanmon.store.tables import pairing_codes, refused_senders, sender_allow

__all__ = ["AllowEntry", "AuthStore", "Issued", "PairingCode", "PairingRequest", "RefusedSender", "literal_glob"]

PairingStatus = Literal["pending", "approved", "denied"]
#: What :meth:`AuthStore.issue_pairing` did: stored a code (and its notice), or nothing because the sender had one
#: within the window (``limited``) or the platform has too many codes pending (``full``).
Issued = Literal["issued", "limited", "full"]


@dataclass(frozen=True, kw_only=True)
class AllowEntry:
    """One allowlist row: senders matching ``pattern`` on ``platform`` ('' = any) in ``folder`` ('' = every group)."""

    id: int
    platform: str
    folder: str
    pattern: str
    note: str
    added_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class PairingCode:
    """One pairing request; the code itself is never stored, only ``code_hash`` (HMAC-SHA256 under ``salt``)."""

    id: int
    platform: str
    sender: str
    sender_name: str
    chat_jid: str
    salt: str
    code_hash: str
    created_at: dt.datetime
    expires_at: dt.datetime
    status: PairingStatus
    decided_at: dt.datetime | None
    decided_by: str | None
    folder: str | None


@dataclass(frozen=True, kw_only=True)
class PairingRequest:
    """A code to store for ``sender`` unless it had one since ``window_start`` or still holds a live one."""

    platform: str
    sender: str
    sender_name: str
    chat_jid: str
    salt: str
    code_hash: str
    now: dt.datetime
    expires_at: dt.datetime
    window_start: dt.datetime
    max_pending: int
    notice: NewMessage


@dataclass(frozen=True, kw_only=True)
class RefusedSender:
    """A sender whose messages in ``chat_jid`` were refused: how many, and the first and last (seq, time)."""

    chat_jid: str
    sender: str
    sender_name: str
    count: int
    first_seq: int
    last_seq: int
    first_at: dt.datetime
    last_at: dt.datetime


class AuthStore(StoreBase):
    """The allowlist, pairing codes and refused senders."""

    # ------------------------------------------------------------------------------------------------ allowlist
    def add_allow(
        self, pattern: str, *, platform: str = "", folder: str = "", note: str = "", now: dt.datetime
    ) -> tuple[AllowEntry, bool]:
        """Allow senders matching ``pattern``; returns the entry and whether it is new (an equal one is kept)."""
        with self._write(config=True) as conn:
            return _add_allow(conn, pattern, platform, folder, note, now)

    def remove_allow(self, entry_id: int) -> AllowEntry:
        """Remove allowlist entry ``entry_id`` and return it. Raises :class:`NotFound` when there is none."""
        with self._write(config=True) as conn:
            row = conn.execute(select(sender_allow).where(sender_allow.c.id == entry_id)).first()
            if row is None:
                raise NotFound(f"no allowlist entry {entry_id}")
            conn.execute(delete(sender_allow).where(sender_allow.c.id == entry_id))
            return from_row(AllowEntry, row)

    def list_allow(self) -> list[AllowEntry]:
        """Every allowlist entry, by platform, folder, pattern."""
        query = select(sender_allow).order_by(sender_allow.c.platform, sender_allow.c.folder, sender_allow.c.pattern)
        with self._read() as conn:
            return from_rows(AllowEntry, conn.execute(query))

    # ------------------------------------------------------------------------------------------------ pairing
    def issue_pairing(self, request: PairingRequest) -> Issued:
        """Store ``request``'s code and its notice to the sender in one transaction, unless the sender had a code
        since ``window_start`` or holds one still live (``limited``), or its platform has ``max_pending`` live codes
        (``full``). A batch read again after a crash finds the code and stores nothing twice. Codes that expired
        undecided before ``window_start`` are deleted first (they limit nobody any more), so the table holds the
        live codes, the recent ones and the decided ones, however many strangers write."""
        codes = pairing_codes.c
        recent = select(codes.id).where(
            codes.platform == request.platform,
            codes.sender == request.sender,
            or_(
                codes.created_at > request.window_start, and_(codes.status == "pending", codes.expires_at > request.now)
            ),
        )
        live = select(func.count()).where(
            codes.platform == request.platform, codes.status == "pending", codes.expires_at > request.now
        )
        # codes that expired undecided and no longer hold their sender back: nothing reads them again
        spent = delete(pairing_codes).where(
            codes.status == "pending", codes.expires_at <= request.now, codes.created_at <= request.window_start
        )
        with self._write(fenced=True) as conn:
            lock_appends(conn)
            conn.execute(spent)
            if conn.execute(recent.limit(1)).first() is not None:
                return "limited"
            if int(conn.execute(live).scalar_one()) >= request.max_pending:
                return "full"
            conn.execute(
                pairing_codes.insert().values(
                    platform=request.platform,
                    sender=request.sender,
                    sender_name=request.sender_name,
                    chat_jid=request.chat_jid,
                    salt=request.salt,
                    code_hash=request.code_hash,
                    created_at=request.now,
                    expires_at=request.expires_at,
                    status="pending",
                )
            )
            append_message(conn, request.notice, request.now)
            return "issued"

    def pairing_codes(self, *, live_at: dt.datetime | None = None, limit: int = 100) -> list[PairingCode]:
        """Pairing requests, newest first; only pending ones not expired at ``live_at`` when it is given."""
        query = select(pairing_codes).order_by(pairing_codes.c.id.desc()).limit(limit)
        if live_at is not None:
            query = query.where(pairing_codes.c.status == "pending", pairing_codes.c.expires_at > live_at)
        with self._read() as conn:
            return from_rows(PairingCode, conn.execute(query))

    def decide_pairing(
        self, code_id: int, status: Literal["approved", "denied"], *, by: str, now: dt.datetime, folder: str = ""
    ) -> tuple[PairingCode, AllowEntry | None]:
        """Approve or deny the pending, unexpired request ``code_id``; approving also allows its sender (on its
        platform, in ``folder`` or every group), in the same transaction. Raises :class:`NotFound` when the request
        is not pending or has expired at ``now``."""
        codes = pairing_codes.c
        with self._write(config=status == "approved") as conn:
            done = conn.execute(
                update(pairing_codes)
                .where(codes.id == code_id, codes.status == "pending", codes.expires_at > now)
                .values(status=status, decided_at=now, decided_by=by, folder=folder if status == "approved" else None)
            )
            if done.rowcount != 1:
                raise NotFound(f"no pending pairing request {code_id} (expired or decided)")
            code = from_row(PairingCode, conn.execute(select(pairing_codes).where(codes.id == code_id)).one())
            if status != "approved":
                return code, None
            note = f"paired by {by}: request {code.id} from {code.chat_jid}"
            entry, _ = _add_allow(conn, literal_glob(code.sender), code.platform, folder, note, now)
            return code, entry

    # ------------------------------------------------------------------------------------------------ refusals
    def note_refused(self, chat_jid: str, sender: str, sender_name: str, seq: int, at: dt.datetime) -> None:
        """Count a refused message; a row counted before (a batch read again after a crash) is not counted twice."""
        values = {
            "chat_jid": chat_jid,
            "sender": sender,
            "sender_name": sender_name,
            "count": 1,
            "first_seq": seq,
            "last_seq": seq,
            "first_at": at,
            "last_at": at,
        }
        stmt = self._insert(refused_senders).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["chat_jid", "sender"],
            set_={
                "count": refused_senders.c.count + 1,
                "last_seq": stmt.excluded.last_seq,
                "last_at": stmt.excluded.last_at,
                "sender_name": stmt.excluded.sender_name,
            },
            where=refused_senders.c.last_seq < stmt.excluded.last_seq,
        )
        with self._write(fenced=True) as conn:
            conn.execute(stmt)

    def refused_senders(self, limit: int = 20) -> tuple[list[RefusedSender], int, int]:
        """The senders refused most recently (up to ``limit``), how many there are, and how many messages in all."""
        query = select(refused_senders).order_by(refused_senders.c.last_seq.desc()).limit(limit)
        totals = select(func.count(), func.coalesce(func.sum(refused_senders.c.count), 0))
        with self._read() as conn:
            found = from_rows(RefusedSender, conn.execute(query))
            senders, messages = conn.execute(totals).one()
            return found, int(senders), int(messages)


def _add_allow(
    conn: Connection, pattern: str, platform: str, folder: str, note: str, now: dt.datetime
) -> tuple[AllowEntry, bool]:
    same = select(sender_allow).where(
        sender_allow.c.platform == platform, sender_allow.c.folder == folder, sender_allow.c.pattern == pattern
    )
    row = conn.execute(same).first()
    if row is not None:
        return from_row(AllowEntry, row), False
    values = {"platform": platform, "folder": folder, "pattern": pattern, "note": note, "added_at": now}
    row = conn.execute(sender_allow.insert().values(**values).returning(*sender_allow.c)).one()
    return from_row(AllowEntry, row), True


def literal_glob(sender: str) -> str:
    """``sender`` as a glob that matches only itself (Go path.Match: escape ``*?[\\``)."""
    return "".join("\\" + ch if ch in "*?[\\" else ch for ch in sender)
