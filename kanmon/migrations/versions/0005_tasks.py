"""Scheduled tasks (issue 15): cron, interval and one-shot tasks that put a message into a chat when they fire

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("missed", sa.Text(), server_default="latest", nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fire_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('cron', 'every', 'at')", name=op.f("ck_tasks_kind")),
        sa.CheckConstraint("missed IN ('latest', 'skip', 'all')", name=op.f("ck_tasks_missed")),
        sa.CheckConstraint("status IN ('active', 'paused', 'done', 'failed')", name=op.f("ck_tasks_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_status_next_fire_at"), "tasks", ["status", "next_fire_at"], unique=False)
    op.create_index(op.f("ix_tasks_group_folder"), "tasks", ["group_folder"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_group_folder"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_status_next_fire_at"), table_name="tasks")
    op.drop_table("tasks")
