"""The store's reads end with COMMIT, so that a PostgreSQL connection keeps the statements psycopg prepared on it.

psycopg prepares a statement once it has run it five times on a connection (``prepare_threshold``), and forgets
every statement it prepared at each ROLLBACK; with reads rolled back, gated's statements were seldom prepared at all
(issue 13).
"""

from __future__ import annotations

import pytest

from kanmon.store import Store
from tests.pgdb import create_pg_database, drop_pg_database


@pytest.mark.postgres
def test_reads_keep_the_statements_psycopg_prepared(pg_admin_url: str, pg_template: str) -> None:
    url = create_pg_database(pg_admin_url, template=pg_template)
    store = Store.open(url, pool_size=1)  # every read on the one connection
    try:
        for n in range(8):
            assert store.get_chat(f"web:nobody-{n}") is None
        with store.engine.connect() as conn:
            prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
        assert any("FROM chats" in statement for statement in prepared), prepared
    finally:
        store.close()
        drop_pg_database(pg_admin_url, url)
