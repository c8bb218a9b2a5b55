"""Is this database a kanmon store? (kanmon.store.identity), on every backend, before anything is written to it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from kanmon.store import Store, UnusableStore, check_schema, upgrade


def test_an_empty_database_and_a_kanmon_store_pass(empty_store_url: str) -> None:
    store = Store.open(empty_store_url)
    try:
        check_schema(store.engine, "here")
        upgrade(store.engine)
        check_schema(store.engine, "here")
    finally:
        store.close()


@pytest.mark.parametrize(
    ("statements", "fragment"),
    [
        pytest.param(["CREATE TABLE users (id integer PRIMARY KEY)"], "here is not a kanmon store: it holds other "
                     "tables (users)", id="another-application"),
        pytest.param(
            [
                "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
                "INSERT INTO alembic_version VALUES ('0badc0ffee00')",
            ],
            "here is at schema revision '0badc0ffee00', unknown to this kanmon",
            id="unknown-revision",
        ),
    ],
)  # fmt: skip
def test_a_database_that_is_not_a_kanmon_store_is_refused(
    empty_store_url: str, statements: list[str], fragment: str
) -> None:
    store = Store.open(empty_store_url)
    try:
        with store.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        with pytest.raises(UnusableStore) as caught:
            check_schema(store.engine, "here")
        assert fragment in str(caught.value)
    finally:
        store.close()
