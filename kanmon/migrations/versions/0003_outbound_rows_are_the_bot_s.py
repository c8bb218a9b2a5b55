"""mark every stored outbound row as the bot's own message (is_bot_message = true)

Outbound rows are kanmon speaking: replies, command answers, apologies, daemon forwards. The appender has set the
flag on them since this revision; the rows written before it get it here. No schema change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_messages = sa.table("messages", sa.column("direction", sa.Text()), sa.column("is_bot_message", sa.Boolean()))


def upgrade() -> None:
    op.execute(_messages.update().where(_messages.c.direction == "out").values(is_bot_message=True))


def downgrade() -> None:
    # Before 0003 nothing wrote an outbound row with the flag set, so false is exactly what they held.
    op.execute(_messages.update().where(_messages.c.direction == "out").values(is_bot_message=False))
