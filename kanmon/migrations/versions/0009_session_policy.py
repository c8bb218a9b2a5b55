"""Session reset policies and the memory flush turn (issue 16 items 2 and 3): one row per pending reset

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "session_resets",
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("flush_session_id", sa.Text(), nullable=True),
        sa.Column("flush_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_folder"],
            ["registered_groups.folder"],
            name=op.f("fk_session_resets_group_folder_registered_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_folder", "topic", name=op.f("pk_session_resets")),
    )


def downgrade() -> None:
    op.drop_table("session_resets")
