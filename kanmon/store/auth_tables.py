"""The tables of sender authorisation (issue 16 item 1): allowlists, DM pairing codes and the senders refused."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Index, Integer, Table, Text, UniqueConstraint

from kanmon.store.columns import SeqType, UTCDateTime, metadata
from kanmon.store.columns import empty_text as _empty

__all__ = ["pairing_codes", "refused_senders", "sender_allow"]

# Sender authorisation (issue 16 item 1, kanmon.gateway.auth): who may talk to an agent when a platform's auth.mode is
# allowlist. platform '' = every platform; folder '' = every group (the gateway-wide list).
sender_allow = Table(
    "sender_allow",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", Text, nullable=False, server_default=_empty(), doc="the JID prefix (telegram), '' = any"),
    Column("folder", Text, nullable=False, server_default=_empty(), doc="the owning group, '' = every group"),
    Column("pattern", Text, nullable=False, doc="a sender id or a glob (Go path.Match) over sender ids"),
    Column("note", Text, nullable=False, server_default=_empty(), doc="who added it and why (pairing: the request)"),
    Column("added_at", UTCDateTime, nullable=False),
    UniqueConstraint("platform", "folder", "pattern"),
    sqlite_autoincrement=True,  # an id is never given twice (migration 0012)
)

pairing_codes = Table(
    "pairing_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("sender_name", Text, nullable=False, server_default=_empty()),
    Column("chat_jid", Text, nullable=False, doc="the direct chat the code was sent to"),
    Column("salt", Text, nullable=False),
    Column("code_hash", Text, nullable=False, doc="hex HMAC-SHA256 of the code under salt; the code is never stored"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("decided_at", UTCDateTime),
    Column("decided_by", Text),
    Column("folder", Text, doc="approved: the group the sender was allowed in ('' = every group)"),
    CheckConstraint("status IN ('pending', 'approved', 'denied')", name="status"),
    Index(None, "platform", "sender", "created_at"),
    Index(None, "status", "expires_at"),
)

refused_senders = Table(
    "refused_senders",
    metadata,
    Column("chat_jid", Text, primary_key=True),
    Column("sender", Text, primary_key=True),
    Column("sender_name", Text, nullable=False, server_default=_empty()),
    Column("count", Integer, nullable=False, server_default="0", doc="messages refused"),
    Column("first_seq", SeqType, nullable=False),
    Column("last_seq", SeqType, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
)
