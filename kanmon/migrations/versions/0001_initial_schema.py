"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "channels",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("jid_prefixes", sa.JSON(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_channels")),
    )
    op.create_table(
        "chats",
        sa.Column("jid", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("is_group", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("sticky_group", sa.Text(), nullable=True),
        sa.Column("sticky_topic", sa.Text(), nullable=True),
        sa.Column(
            "agent_cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), server_default="0", nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("jid", name=op.f("pk_chats")),
    )
    op.create_table(
        "messages",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("sender_name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("content", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verb", sa.Text(), server_default="message", nullable=False),
        sa.Column("topic", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("reply_to_id", sa.Text(), nullable=True),
        sa.Column("reply_to_text", sa.Text(), nullable=True),
        sa.Column("reply_to_sender", sa.Text(), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=True),
        sa.Column("forwarded_from", sa.Text(), nullable=True),
        sa.Column("is_bot_message", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("origin", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("output_index", sa.Integer(), nullable=True),
        sa.Column("delivery_status", sa.Text(), nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deliver_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.Column("platform_message_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "delivery_status IS NULL OR delivery_status IN ('pending', 'sent', 'failed')",
            name=op.f("ck_messages_delivery_status"),
        ),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f("ck_messages_direction")),
        sa.CheckConstraint(
            "status IS NULL OR status IN ('new', 'done', 'dead', 'skipped')", name=op.f("ck_messages_status")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_messages")),
        sa.UniqueConstraint("chat_jid", "id", name=op.f("uq_messages_chat_jid_id")),
        sa.UniqueConstraint("run_id", "output_index", name=op.f("uq_messages_run_id_output_index")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_chat_jid_seq"), ["chat_jid", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_delivery_status_seq"), ["delivery_status", "seq"], unique=False)

    op.create_table(
        "registered_groups",
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parent", sa.Text(), nullable=True),
        sa.Column("container_config", sa.JSON(), nullable=True),
        sa.Column("web_token", sa.Text(), nullable=True),
        sa.Column("impulse_config", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent"],
            ["registered_groups.folder"],
            name=op.f("fk_registered_groups_parent_registered_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("folder", name=op.f("pk_registered_groups")),
    )
    op.create_table(
        "router_state",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_router_state")),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("match", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("impulse_config", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
    )
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routes_seq"), ["seq"], unique=False)

    op.create_table(
        "session_log",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("instance", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("runtime", sa.Text(), nullable=False),
        sa.Column("container", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("first_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("last_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('starting', 'running', 'ok', 'error', 'timeout', 'stopped', 'reclaimed')",
            name=op.f("ck_session_log_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_log")),
    )
    with op.batch_alter_table("session_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_log_group_folder_started_at"), ["group_folder", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_session_log_status"), ["status"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_folder"],
            ["registered_groups.folder"],
            name=op.f("fk_sessions_group_folder_registered_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_folder", "topic", name=op.f("pk_sessions")),
    )
    op.create_table(
        "system_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_folder"],
            ["registered_groups.folder"],
            name=op.f("fk_system_messages_group_folder_registered_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_messages")),
    )
    with op.batch_alter_table("system_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_system_messages_group_folder_id"), ["group_folder", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("system_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_messages_group_folder_id"))

    op.drop_table("system_messages")
    op.drop_table("sessions")
    with op.batch_alter_table("session_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_log_status"))
        batch_op.drop_index(batch_op.f("ix_session_log_group_folder_started_at"))

    op.drop_table("session_log")
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routes_seq"))

    op.drop_table("routes")
    op.drop_table("router_state")
    op.drop_table("registered_groups")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_delivery_status_seq"))
        batch_op.drop_index(batch_op.f("ix_messages_chat_jid_seq"))

    op.drop_table("messages")
    op.drop_table("chats")
    op.drop_table("channels")
