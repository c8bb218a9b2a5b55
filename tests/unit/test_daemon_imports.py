"""What a gated loads is what it uses (issue 13's RSS target): modules imported for a feature nobody configured are
resident memory for nothing, and a module-level import added later brings them back unnoticed.

- A SQLite gated never loads SQLAlchemy's PostgreSQL dialect, psycopg or Alembic (on a store at the head revision):
  2.4 MiB.
- A gated without a config file, cron tasks or files from its agents never loads PyYAML, croniter (and dateutil) or
  filetype: 2.2 MiB. Each is imported by the function that first needs it; the tests of config files, schedules and
  media show those still work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kanmon.store import Store, upgrade

AT_WORK = """
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

# A whole daemon (HTTP surface, loop, scheduler, delivery) answers one message on an in-process agent, then says
# which of the optional libraries it loaded.
SERVING = """
import asyncio
import os
import signal
import sys
from pathlib import Path

from kanmon.container import AgentCall, InProcessRuntime
from kanmon.gated.config import load_settings
from kanmon.gated.daemon import Daemon
from kanmon.serving import listen
from kanmon.store import Group, NewMessage, Store

OPTIONAL = ("yaml", "croniter", "dateutil", "filetype")


async def answer(call: AgentCall) -> int:
    call.emit({"status": "ok", "result": "hi"})
    return 0


async def main(data_dir: Path) -> None:
    settings = load_settings(data_dir=str(data_dir), config_path=None, environ={}, overrides={})
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    store.add_group(Group(folder="corp", container_config={"runtime": "inprocess"}))
    runtime = InProcessRuntime(answer)
    daemon = Daemon(settings, store, listener=listen("127.0.0.1:0"), runtimes={"inprocess": runtime})
    serving = asyncio.create_task(daemon.run())
    await daemon.gateway.started.wait()
    await daemon.gateway.put_message(NewMessage(chat_jid="web:corp", content="hello", sender="user:1"))
    while not [m for m in store.latest_chat_messages("web:corp") if m.direction == "out"]:
        await asyncio.sleep(0.02)
    os.kill(os.getpid(), signal.SIGTERM)  # stopped as an operator stops it
    await asyncio.wait_for(serving, 30)
    print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] in OPTIONAL)))


asyncio.run(main(Path(sys.argv[1])))
"""


def child(program: str, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_daemon_and_a_sqlite_store_at_work_load_nothing_of_postgresql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kanmon.db'}"
    store = Store.open(url)
    upgrade(store.engine)  # here, not in the child: migrating is Alembic's work, and Alembic loads every dialect
    store.close()
    assert child(AT_WORK, url) == []


def test_a_daemon_answering_a_message_loads_no_library_of_a_feature_it_does_not_use(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    store.close()
    assert child(SERVING, str(tmp_path)) == []
