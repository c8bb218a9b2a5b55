"""A migrated store on every backend: each store test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.store import Store, upgrade
from tests.pgdb import backend_database, create_pg_database, drop_pg_database


@pytest.fixture
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, unmigrated database of the backend this test runs on."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kanmon.db'}"
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    url = create_pg_database(admin_url)
    yield url
    drop_pg_database(admin_url, url)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated, empty database of the backend this test runs on."""
    with backend_database(request, tmp_path / "kanmon.db") as url:
        if request.param == "sqlite":  # PostgreSQL's is a copy of the migrated template
            store = Store.open(url)
            upgrade(store.engine)
            store.close()
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty Store on the backend this test runs on."""
    store = Store.open(store_url)
    yield store
    store.close()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that asks for a store (or a store URL) once per backend."""
    for name in ("store_url", "empty_store_url"):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, BACKENDS, indirect=True)
            return
