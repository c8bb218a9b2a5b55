"""Fixtures for the layer tests: a migrated SQLite store, a fake queue, groups, one owning route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.store import Store, upgrade
from tests.unit.gateway.gateway_world import FakeQueue, World


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(store.engine)
    yield store
    store.close()


@pytest.fixture
def world(store: Store) -> World:
    """Groups corp, corp/eng, corp/ops and other; telegram chats belong to corp."""
    w = World(store, FakeQueue())
    for folder in ("corp", "corp/eng", "corp/ops", "other"):
        w.group(folder, name=folder.title())
    w.route("platform=telegram", "corp", seq=10)
    return w
