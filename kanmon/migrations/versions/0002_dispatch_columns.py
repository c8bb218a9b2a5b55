"""record each inbound row's dispatch decision (routed folder, topic, content) and index the rows that wait

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (nullable, no default): no table rebuild, cheap on a large log.
    op.add_column("messages", sa.Column("routed_folder", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("routed_topic", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("routed_content", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_messages_status_routed_folder_seq"), "messages", ["status", "routed_folder", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_messages_status_routed_folder_seq"), table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("routed_content")
        batch_op.drop_column("routed_topic")
        batch_op.drop_column("routed_folder")
