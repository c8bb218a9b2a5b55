"""Throwaway PostgreSQL databases on the test server (one per test, or copied from a migrated template)."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url


def create_pg_database(admin_url: str, template: str | None = None) -> str:
    """Create a fresh database (optionally copied from ``template``) and return its URL."""
    name = f"kanmon_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    """Drop the database at ``url``, disconnecting whoever still uses it."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    admin.dispose()
