"""The web chat: several tokens per group (labelled, each revocable) instead of one, and topic names

Each group's one web token hash moves into ``web_tokens`` (labelled ``migrated``), and the column that held it goes.
The column is dropped in place (SQLite 3.35+ ``ALTER TABLE … DROP COLUMN``): a batch rebuild would drop and recreate
``registered_groups``, and with foreign keys on, dropping it would cascade to every table that refers to it.
Downgrading gives each group its newest token back, the one a downgraded gated can hold.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_folder"],
            ["registered_groups.folder"],
            name=op.f("fk_web_tokens_group_folder_registered_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_tokens")),
    )
    op.create_index(op.f("ix_web_tokens_group_folder"), "web_tokens", ["group_folder"], unique=False)
    op.create_table(
        "topic_names",
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("named_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_jid", "topic", name=op.f("pk_topic_names")),
    )
    op.execute(
        "INSERT INTO web_tokens (group_folder, token_hash, label, created_at)"
        " SELECT folder, web_token, 'migrated', added_at FROM registered_groups WHERE web_token IS NOT NULL"
        " ORDER BY folder"
    )
    with op.batch_alter_table("registered_groups", recreate="never") as batch_op:
        batch_op.drop_column("web_token")


def downgrade() -> None:
    with op.batch_alter_table("registered_groups", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("web_token", sa.Text(), nullable=True))
    op.execute(
        "UPDATE registered_groups SET web_token = (SELECT t.token_hash FROM web_tokens t"
        " WHERE t.group_folder = registered_groups.folder ORDER BY t.id DESC LIMIT 1)"
    )
    op.drop_table("topic_names")
    op.drop_index(op.f("ix_web_tokens_group_folder"), table_name="web_tokens")
    op.drop_table("web_tokens")
