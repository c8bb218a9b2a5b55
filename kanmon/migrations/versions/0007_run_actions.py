"""Agent actions (issue 15): a ledger of the actions runs asked for, each applied once by (run, output, action)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_actions",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("output_index", sa.Integer(), nullable=False),
        sa.Column("action_index", sa.Integer(), nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('done', 'refused')", name=op.f("ck_run_actions_outcome")),
        sa.PrimaryKeyConstraint("run_id", "output_index", "action_index", name=op.f("pk_run_actions")),
    )


def downgrade() -> None:
    op.drop_table("run_actions")
