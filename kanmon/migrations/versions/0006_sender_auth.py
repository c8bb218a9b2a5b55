"""Sender authorisation (issue 16 item 1): sender allowlists, DM pairing codes and the refused senders

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sender_allow",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("folder", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_allow")),
        sa.UniqueConstraint("platform", "folder", "pattern", name=op.f("uq_sender_allow_platform_folder_pattern")),
    )
    op.create_table(
        "pairing_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("sender_name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("salt", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("folder", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'denied')", name=op.f("ck_pairing_codes_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairing_codes")),
    )
    op.create_index(
        op.f("ix_pairing_codes_platform_sender_created_at"), "pairing_codes", ["platform", "sender", "created_at"]
    )
    op.create_index(op.f("ix_pairing_codes_status_expires_at"), "pairing_codes", ["status", "expires_at"])
    op.create_table(
        "refused_senders",
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("sender_name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_jid", "sender", name=op.f("pk_refused_senders")),
    )


def downgrade() -> None:
    op.drop_table("refused_senders")
    op.drop_index(op.f("ix_pairing_codes_status_expires_at"), table_name="pairing_codes")
    op.drop_index(op.f("ix_pairing_codes_platform_sender_created_at"), table_name="pairing_codes")
    op.drop_table("pairing_codes")
    op.drop_table("sender_allow")
