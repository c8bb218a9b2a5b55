"""What every command needs, built lazily from the CLI's global options: settings, then the store."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kanmon.errors import InvalidInput
from kanmon.gated.config import load_settings
from kanmon.gated.settings import Settings
from kanmon.store import (
    Store,
    check_schema,
    check_store_location,
    current_revision,
    describe_url,
    head_revision,
    upgrade_if_behind,
)
from kanmon.store.errors import NotMigrated

__all__ = ["App", "NotMigrated", "refuse_unknown_group"]


def refuse_unknown_group(store: Store, folder: str | None, what: str, *, history: Callable[[], object]) -> None:
    """Raise :class:`InvalidInput` (exit 2) when ``--group folder`` names no group and ``history()`` finds nothing of
    it: a removed group's ``what`` (runs, tasks, usage) is still listed, a folder never registered is a slip."""
    if folder is not None and store.get_group(folder) is None and not history():
        raise InvalidInput(f"no group {folder!r} and no {what} of it (`gated group list` shows the groups)")


@dataclass
class App:
    """The global options of one ``gated`` invocation and the objects derived from them."""

    data_dir: str | None = None
    config_path: str | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _settings: Settings | None = None
    _store: Store | None = None
    _checked: bool = False

    @property
    def settings(self) -> Settings:
        """The effective configuration (loaded on first use; raises ConfigError)."""
        if self._settings is None:
            self._settings = load_settings(
                data_dir=self.data_dir, config_path=self.config_path, environ=self.environ, overrides=self.overrides
            )
        return self._settings

    def store(self, *, migrate: bool | None = None, create: bool = False) -> Store:
        """The store, its schema up to date.

        The embedded SQLite store is migrated on first use, so a fresh data dir just works. A PostgreSQL store is
        shared and upgraded deliberately: it is migrated only by ``gated migrate`` and ``gated run``.
        ``migrate`` True or False forces the choice either way. Only commands that may create a store pass
        ``create`` (migrate, run, demo, group add, send); for the others a missing SQLite store is :class:`NoStore`
        and nothing is created. A URL or database that is not a kanmon store is :class:`UnusableStore`, found
        before anything is written (:mod:`kanmon.store.identity`).
        """
        if not self._checked:
            store = self.open_store(create=create)
            check_schema(store.engine, self.describe_store())
            if migrate is None:
                migrate = store.dialect == "sqlite"
            if migrate:
                upgrade_if_behind(store.engine)
            elif current_revision(store.engine) != head_revision():
                self.close()
                raise NotMigrated(f"the store at {self.describe_store()} is not migrated: run `gated migrate` first")
            self._checked = True
        assert self._store is not None
        return self._store

    def open_store(self, *, create: bool) -> Store:
        """The store as it is, schema unchecked (``gated run`` locks it before migrating anything).

        Raises :class:`NoStore` (unless ``create``) or :class:`UnusableStore` before touching the disk.
        """
        if self._store is None:
            settings = self.settings
            check_store_location(settings.store_url, create=create)
            self._store = Store.open(
                settings.store_url, busy_timeout_ms=settings.store.busy_timeout_ms, pool_size=settings.store.pool_size
            )
        return self._store

    def describe_store(self) -> str:
        """Where the store is, for messages (a PostgreSQL URL without its password)."""
        return describe_url(self.settings.store_url)

    def group_dir(self, folder: str) -> Path:
        """Where the files of group ``folder`` live."""
        return self.settings.data_dir / "groups" / folder

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None
            self._checked = False
