"""Ids an operator names are never given twice: routes, allowlist entries, tasks and web tokens (SQLite AUTOINCREMENT)

`gated route rm ID`, `gated allow rm ID`, `gated task rm ID` and `gated group web-token --revoke ID` name a row by its
integer id. SQLite gives a new row the highest id in the table plus one, so after the newest row was removed the next
one got its id, and an id an operator had noted (or a script kept) named another row: `--revoke 2` revoked someone
else's token. With AUTOINCREMENT, SQLite remembers the highest id ever given (``sqlite_sequence``) and never gives
one again. PostgreSQL's sequences never did; there this revision changes nothing.

Each table is rebuilt with its rows, ids and indexes (nothing refers to these tables, so the rebuild cascades
nowhere). Ids removed before this revision, above the highest id still there, cannot be known and may be given once
more; none after.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("routes", "sender_allow", "tasks", "web_tokens")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        kwargs = {"sqlite_autoincrement": autoincrement}
        with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
