"""SIGKILL of a real ``gated run`` around a task's fire time (issue 15): before the occurrence is stored, right after
it is stored, and while the run it started is going. Each time the occurrence is stored once and answered once, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kanmon.store import Group, NewTask, Store, Task, upgrade
from tests.gated_process import Gated
from tests.gateway_harness import ECHO_COMMAND
from tests.pgdb import backend_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FAST = {
    "KANMON_POLL_INTERVAL": "0.3",
    "KANMON_RETRY_BASE_DELAY": "0.5",
    "KANMON_STORE_LOCK_CHECK_INTERVAL": "0.5",
    "KANMON_SCHEDULER_INTERVAL": "0.2",
}
PROMPT = "the daily report"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_database(request, tmp_path / "data" / "kanmon.db") as url:
        yield url


def wait(condition: Callable[[], bool], what: str, gated: Gated, timeout: float = 60.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{gated.logged()[-4000:]}")
        time.sleep(step)


def occurrences(store: Store, task: Task) -> list[str]:
    return [row.id for row in store.new_messages(0, 10_000) if row.id.startswith(f"task:{task.id}:")]


def answers(store: Store) -> int:
    return sum(
        1 for row in store.new_messages(0, 10_000) if row.direction == "out" and row.content == f"echo: {PROMPT}"
    )


@pytest.mark.parametrize("kill", ["before the store", "right after the store", "during the run"])
def test_a_kill_around_the_fire_time_fires_the_occurrence_exactly_once(
    tmp_path: Path, store_url: str, kill: str
) -> None:
    store = Store.open(store_url)
    upgrade(store.engine)
    delay = "4" if kill == "during the run" else "0"
    config = {"runtime": "process", "command": ECHO_COMMAND, "env": {"ECHO_DELAY": delay}}
    store.add_group(Group(folder="corp", container_config=config))
    instance = f"tasks{uuid.uuid4().hex[:8]}"
    env = {**FAST, "KANMON_STORE_URL": store_url}
    gated = Gated(tmp_path / "data", tmp_path / "gated.log", args=["--no-http", "--instance", instance], env=env)
    try:
        gated.start()
        gated.wait_logged("gated running")
        fire_at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=3)
        task = store.add_task(
            NewTask(group_folder="corp", chat_jid="web:corp", prompt=PROMPT, kind="cron", expression="0 0 1 1 *",
                    next_fire_at=fire_at, created_at=fire_at - dt.timedelta(days=1))
        )  # fmt: skip
        if kill == "before the store":
            time.sleep(1.5)
            assert occurrences(store, task) == []
            gated.kill()
            time.sleep(max(0.0, (fire_at - dt.datetime.now(dt.UTC)).total_seconds()) + 1.0)  # down at fire time
        elif kill == "right after the store":
            wait(lambda: bool(occurrences(store, task)), "the occurrence to be stored", gated, step=0.005)
            gated.kill()
        else:
            wait(lambda: bool(store.active_runs()), "the run of the occurrence", gated, step=0.02)
            gated.kill()
        assert gated.kills == 1
        gated.start()
        wait(lambda: answers(store) >= 1 and not store.active_runs(), "the answer", gated)
        time.sleep(2.0)  # a second occurrence or answer that was about to be stored would land now
        fired = store.get_task(task.id)
        assert fired is not None
        assert occurrences(store, task) == [f"task:{task.id}:{fire_at:%Y-%m-%dT%H:%M:%SZ}"]
        assert fired.fire_count == 1 and fired.last_fire_at == fire_at
        assert fired.next_fire_at is not None and fired.next_fire_at > fire_at + dt.timedelta(days=1)
        assert answers(store) == 1, gated.logged()[-4000:]
    finally:
        gated.stop()
        store.close()


def test_a_standby_fires_nothing_until_it_holds_the_store_then_fires_what_is_due(
    tmp_path: Path, store_url: str
) -> None:
    """Two gated on one store, one a hot standby: the holder fires the first task; killed, the standby takes over
    and fires the second (due while nobody held the store), and nothing is stored or answered twice."""
    store = Store.open(store_url)
    upgrade(store.engine)
    store.add_group(Group(folder="corp", container_config={"runtime": "process", "command": ECHO_COMMAND}))
    env = {**FAST, "KANMON_STORE_URL": store_url}
    data = tmp_path / "data"
    holder = Gated(data, tmp_path / "holder.log", args=["--no-http"], env=env)
    standby = Gated(data, tmp_path / "standby.log", args=["--no-http", "--standby"], env=env)
    try:
        holder.start().wait_logged("gated running")
        standby.start().wait_logged("standby:")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        first, second = (
            store.add_task(
                NewTask(
                    group_folder="corp",
                    chat_jid="web:corp",
                    prompt=PROMPT,
                    kind="cron",
                    expression="0 0 1 1 *",
                    next_fire_at=now + dt.timedelta(seconds=delay),
                    created_at=now,
                )
            )
            for delay in (2, 6)
        )
        wait(lambda: answers(store) == 1, "the holder's answer to the first task", holder)
        holder.kill()
        standby.wait_logged("gated running", timeout=30)
        wait(lambda: answers(store) == 2 and not store.active_runs(), "the standby's answer", standby)
        time.sleep(2.0)
        assert len(occurrences(store, first)) == len(occurrences(store, second)) == 1
        assert answers(store) == 2
        assert "task occurrence(s) stored" not in standby.logged().split("gated running")[0]
        assert "task occurrence(s) stored" in standby.logged().split("gated running")[1]
    finally:
        holder.stop()
        standby.stop()
        store.close()
