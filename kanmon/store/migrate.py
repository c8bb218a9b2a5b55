"""Apply and inspect the Alembic migrations shipped in kanmon.migrations (SPEC §4).

Alembic is imported only to change or compare a schema: reading which revision a store is at, and which ones kanmon
ships, is plain SQL and a look at the revision files, so a gated whose store is current never loads it (about 10 MiB
of its memory; issue 13).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, inspect, text

from kanmon.store.engine import WRITE
from kanmon.store.errors import translate_errors
from kanmon.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

_REVISION = re.compile(r'^revision: str = "([^"]+)"$', re.MULTILINE)
_DOWN = re.compile(r'^down_revision: str \| None = (?:"([^"]+)"|None)$', re.MULTILINE)

__all__ = [
    "current_revision",
    "downgrade",
    "head_revision",
    "known_revisions",
    "schema_drift",
    "upgrade",
    "upgrade_if_behind",
]


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "kanmon:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    from alembic import command

    config = _config()
    with translate_errors(), engine.execution_options(**WRITE).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (an older one), undoing each newer migration's changes in turn."""
    from alembic import command

    config = _config()
    with translate_errors(), engine.execution_options(**WRITE).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def head_revision() -> str:
    """The newest revision shipped with this kanmon (the one no other revision names as its predecessor)."""
    revisions = _shipped()
    heads = set(revisions) - set(revisions.values())
    assert len(heads) == 1, f"the migrations must form one line, not {sorted(heads)}"
    return heads.pop()


def known_revisions() -> set[str]:
    """Every revision shipped with this kanmon: a store at any of them can be upgraded to the head."""
    return set(_shipped())


@functools.cache
def _shipped() -> dict[str, str | None]:
    """Each shipped revision and the one before it, read from the revision files (as Alembic reads them)."""
    found: dict[str, str | None] = {}
    for entry in resources.files("kanmon.migrations").joinpath("versions").iterdir():
        if entry.name.endswith(".py") and not entry.name.startswith("_"):
            source = entry.read_text(encoding="utf-8")
            revision, down = _REVISION.search(source), _DOWN.search(source)
            if revision is not None and down is not None:
                found[revision.group(1)] = down.group(1)
    return found


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when it was never migrated (Alembic's ``alembic_version`` table)."""
    with translate_errors(), engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_if_behind(engine: Engine) -> bool:
    """:func:`upgrade` unless the store is at the head already (then Alembic is never loaded); True if it ran."""
    if current_revision(engine) == head_revision():
        return False
    upgrade(engine)
    return True


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the database's schema and the tables kanmon declares (empty when none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    options = {"compare_type": True, "compare_server_default": True}
    with translate_errors(), engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts=options), metadata))
