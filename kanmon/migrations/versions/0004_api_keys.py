"""API keys of the OpenAI-compatible API (only their hashes) and the groups each key may use

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "api_key_groups",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("group_folder", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_folder"],
            ["registered_groups.folder"],
            name=op.f("fk_api_key_groups_group_folder_registered_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_api_key_groups_key_id_api_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_id", "group_folder", name=op.f("pk_api_key_groups")),
    )


def downgrade() -> None:
    op.drop_table("api_key_groups")
    op.drop_table("api_keys")
