"""Is this database a kanmon store? Checked before anything is written to it, so a wrong path or URL changes nothing.

kanmon migrates an embedded SQLite store on first use, so pointing it at the wrong file used to be costly: a text
file failed with a traceback, and another application's SQLite database was quietly given kanmon's tables (and
switched to WAL). The rules, the same on both backends:

- no tables at all: an empty database, which kanmon may make its store;
- an ``alembic_version`` naming a revision this kanmon ships: a kanmon store (maybe to be upgraded);
- an ``alembic_version`` naming another revision: refused (a newer kanmon's store, or another Alembic user's);
- tables but no ``alembic_version``: refused, it belongs to someone else.

A SQLite file is judged through a read-only connection of the standard library before an engine opens it (an engine
connection would switch it to WAL); a PostgreSQL database through the engine, which changes nothing by connecting.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, column, inspect, select, table
from sqlalchemy.engine import make_url

from kanmon.store.engine import describe_url_safely, url_problem
from kanmon.store.errors import NoStore, UnusableStore, translate_errors
from kanmon.store.migrate import known_revisions

__all__ = ["check_schema", "check_sqlite_file", "check_store_location"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_VERSION_TABLE = "alembic_version"
_SHOWN_TABLES = 5


def check_sqlite_file(path: Path, *, must_exist: bool) -> None:
    """Refuse a SQLite store file that is not (or cannot become) a kanmon store; never creates or changes a file.

    Raises :class:`NoStore` when ``path`` does not exist and ``must_exist``, and :class:`UnusableStore` when it is a
    directory, not a SQLite database, unreadable, or a database that is not a kanmon store (see the module rules).
    """
    if not path.exists():
        if must_exist:
            raise NoStore(f"no store at {path}: run `gated migrate` or `gated run` first")
        return
    if not path.is_file():
        raise UnusableStore(f"{path} is not a file, so not a SQLite store")
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise UnusableStore(f"cannot read the store {path}: {exc.strerror or exc}") from None
    if not header:  # an empty SQLite database: no kanmon store yet, to a command that must not make one
        if must_exist:
            raise NoStore(f"no store at {path} (an empty file): run `gated migrate` or `gated run` first")
        return
    if header != _SQLITE_MAGIC:
        raise UnusableStore(f"{path} is not a SQLite database, so not a kanmon store")
    try:
        tables, revision = _read_sqlite(path)
    except sqlite3.Error as exc:
        raise UnusableStore(f"{path} is not a usable SQLite database: {exc}") from None
    _judge(str(path), tables, revision)


def check_schema(engine: Engine, where: str) -> None:
    """Refuse a database that is not a kanmon store (see the module rules); ``where`` names it in the message."""
    with translate_errors(), engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        revision = None
        if _VERSION_TABLE in tables:
            versions = table(_VERSION_TABLE, column("version_num"))
            revision = conn.execute(select(versions.c.version_num)).scalar()
    _judge(where, tables, revision)


def _read_sqlite(path: Path) -> tuple[set[str], str | None]:
    # mode=ro: no journal, no WAL switch, no file created for a database in rollback mode
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        tables = {str(name) for (name,) in rows}
        revision = None
        if _VERSION_TABLE in tables:
            found = connection.execute(f"SELECT version_num FROM {_VERSION_TABLE}").fetchone()  # noqa: S608
            revision = None if found is None else str(found[0])
        return tables, revision
    finally:
        connection.close()


def _judge(where: str, tables: set[str], revision: str | None) -> None:
    others = sorted(tables - {_VERSION_TABLE})
    if _VERSION_TABLE not in tables:
        if others:
            shown = ", ".join(others[:_SHOWN_TABLES]) + (", …" if len(others) > _SHOWN_TABLES else "")
            raise UnusableStore(f"{where} is not a kanmon store: it holds other tables ({shown})")
        return
    if revision is not None and revision not in known_revisions():
        raise UnusableStore(
            f"{where} is at schema revision {revision!r}, unknown to this kanmon (a newer kanmon's store, or "
            "another application's database)"
        )


def check_store_location(url: str, *, create: bool) -> None:
    """Before a store is opened: refuse a URL kanmon cannot use, and a SQLite file that is not a kanmon store.

    With ``create`` False a missing SQLite file is :class:`NoStore` (the command needs a store and must not leave an
    empty one behind); with ``create`` True it is fine, the store will be created. Nothing is created or changed
    either way. A PostgreSQL database is judged once connected (:func:`check_schema`).
    """
    problem = url_problem(url)
    if problem is not None:
        raise UnusableStore(f"store URL {describe_url_safely(url)}: {problem}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        check_sqlite_file(Path(parsed.database), must_exist=not create)
