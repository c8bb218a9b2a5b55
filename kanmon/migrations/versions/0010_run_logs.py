"""Run logs (issue 18 item 1): the capped tails of a run's stderr and of its stdout outside blocks, for gated run-log

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_logs",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stderr", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("stdout", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_logs")),
    )


def downgrade() -> None:
    op.drop_table("run_logs")
