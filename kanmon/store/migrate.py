"""Apply and inspect the Alembic migrations shipped in kanmon.migrations (SPEC §4)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from kanmon.store.engine import WRITE
from kanmon.store.errors import translate_errors
from kanmon.store.tables import metadata

__all__ = ["current_revision", "downgrade", "head_revision", "known_revisions", "schema_drift", "upgrade"]


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "kanmon:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    config = _config()
    with translate_errors(), engine.execution_options(**WRITE).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (an older one), undoing each newer migration's changes in turn."""
    config = _config()
    with translate_errors(), engine.execution_options(**WRITE).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def head_revision() -> str:
    """The newest revision shipped with this kanmon."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision shipped with this kanmon: a store at any of them can be upgraded to the head."""
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    with translate_errors(), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the database's schema and the tables kanmon declares (empty when none)."""
    options = {"compare_type": True, "compare_server_default": True}
    with translate_errors(), engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts=options), metadata))
