"""Usage and cost (issue 16 item 4): what each output block reported, keyed by (run_id, output_index)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("output_index", sa.Integer(), nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("chat_jid", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("day", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("run_id", "output_index", name=op.f("pk_usage")),
    )
    op.create_index(op.f("ix_usage_group_folder_day"), "usage", ["group_folder", "day"], unique=False)
    op.create_index(op.f("ix_usage_day"), "usage", ["day"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_day"), table_name="usage")
    op.drop_index(op.f("ix_usage_group_folder_day"), table_name="usage")
    op.drop_table("usage")
