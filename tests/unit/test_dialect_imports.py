"""A SQLite gated never loads SQLAlchemy's PostgreSQL dialect, psycopg or Alembic (on a store at the head revision):
2.4 MiB of resident memory it does not need (issue 13's RSS target), which a module-level import in the store once
added unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kanmon.store import Store, upgrade

PROGRAM = """
import datetime as dt
import sys

import kanmon.gated.daemon
from kanmon.store import NewMessage, Store, upgrade_if_behind

store = Store.open(sys.argv[1])
upgrade_if_behind(store.engine)
store.put_message(NewMessage(chat_jid="web:corp", content="hello", sender="user:1"))
reply = NewMessage(chat_jid="web:corp", content="hi", sender="corp", run_id="r1", output_index=0)
store.record_replies([reply], now=dt.datetime.now(dt.UTC))
unwanted = ("sqlalchemy.dialects.postgresql", "psycopg", "alembic")
print(" ".join(sorted(name for name in sys.modules if name.startswith(unwanted))))
"""


def test_the_daemon_and_a_sqlite_store_at_work_load_nothing_of_postgresql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kanmon.db'}"
    store = Store.open(url)
    upgrade(store.engine)  # here, not in the child: migrating is Alembic's work, and Alembic loads every dialect
    store.close()
    child = subprocess.run([sys.executable, "-c", PROGRAM, url], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == []
