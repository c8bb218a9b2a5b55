"""The store lock is a fence (SPEC §14): a database restart, a second gated and a standby never answer anything twice.

Each test runs `gated run` children against a PostgreSQL cluster of its own (``private_pg``), which it restarts or
stops, while a driver keeps putting messages into the store (retrying through the outage, as an adapter would). At
the end every message has exactly one reply and nothing was lost.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kanmon.store import Group, NewMessage, Store, StoreUnavailable, upgrade
from tests.gated_process import Gated
from tests.gateway_harness import ECHO_COMMAND
from tests.pgdb import PrivatePostgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHATS = 5
AGENT_ENV = {"ECHO_DELAY_MAX": "0.4"}
FAST = {"KANMON_POLL_INTERVAL": "0.3", "KANMON_RETRY_BASE_DELAY": "0.3", "KANMON_STORE_LOCK_CHECK_INTERVAL": "0.3"}


@pytest.fixture
def cluster(private_pg: PrivatePostgres) -> Iterator[Store]:
    """The private cluster, migrated, with CHATS echo groups; the test's own view of the store."""
    store = Store.open(private_pg.url)
    upgrade(store.engine)
    for n in range(CHATS):
        group = Group(
            folder=f"g{n}", container_config={"runtime": "process", "command": ECHO_COMMAND, "env": AGENT_ENV}
        )
        store.add_group(group)
    yield store
    store.close()


def gated(tmp_path: Path, pg: PrivatePostgres, name: str, *args: str) -> Gated:
    """A `gated run` on the private cluster, all of them sharing one data dir (so one instance name, one runs dir)."""
    env = {**FAST, "KANMON_STORE_URL": pg.url}
    return Gated(tmp_path / "data", tmp_path / f"{name}.log", args=["--no-http", *args], env=env)


class Driver:
    """Puts ``total`` messages into the store from a thread, a few at a time, waiting out database outages."""

    def __init__(self, store: Store, total: int, *, per_second: float = 15.0) -> None:
        self.store = store
        self.texts = [f"g{n % CHATS}-m{n:03d}" for n in range(total)]
        self.interval = 1.0 / per_second
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Driver:
        self._thread.start()
        return self

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the driver is stuck after {self.sent} messages"

    def _run(self) -> None:
        for text in self.texts:
            message = NewMessage(chat_jid=f"web:{text[:2]}", content=text, sender="driver", id=text)
            for attempt in Retrying(
                retry=retry_if_exception_type(StoreUnavailable), wait=wait_fixed(0.2), stop=stop_after_delay(60)
            ):
                with attempt:
                    self.store.put_message(message)
            self.sent += 1
            time.sleep(self.interval)

    def counts(self) -> tuple[int, int, int]:
        """(duplicated replies, unanswered messages, rows still waiting or dead)."""
        rows = self.store.new_messages(0, limit=100_000)
        answered = collections.Counter(row.content.removeprefix("echo: ") for row in rows if row.direction == "out")
        unsettled = sum(1 for row in rows if row.direction == "in" and row.status != "done")
        duplicates = sum(count - 1 for count in answered.values() if count > 1)
        lost = sum(1 for text in self.texts if answered[text] == 0)
        return duplicates, lost, unsettled

    def wait_answered(self, timeout: float = 120.0) -> tuple[int, int, int]:
        deadline = time.monotonic() + timeout
        counts = self.counts()
        while time.monotonic() < deadline:
            counts = self.counts()
            if counts[1] == 0 and counts[2] == 0:
                break
            time.sleep(0.5)
        time.sleep(1.5)  # a duplicate about to be stored would land now
        return self.counts()


@pytest.mark.parametrize("frozen", [False, True], ids=["racing", "first-frozen"])
def test_a_database_restart_with_a_second_gated_starting_answers_every_message_once(
    tmp_path: Path, private_pg: PrivatePostgres, cluster: Store, frozen: bool
) -> None:
    """The second gated starts while the server is down: it waits for the database, then races the first for the
    store. Whoever wins serves and the other exits 3. ``first-frozen``: the first is stopped (SIGSTOP) through the
    restart and wakes up, runs in flight, only after the second holds the store: its fence keeps it from writing."""
    first = gated(tmp_path, private_pg, "first").start()
    second = gated(tmp_path, private_pg, "second")
    try:
        first.wait_logged("gated running")
        driver = Driver(cluster, 150).start()
        time.sleep(3.0)
        if frozen:
            first.signal(signal.SIGSTOP)
        restarting = threading.Thread(target=private_pg.restart)
        restarting.start()
        second.start()
        restarting.join(60)
        if frozen:
            second.wait_logged("gated running", timeout=30)
            first.signal(signal.SIGCONT)
        driver.join()
        duplicates, lost, unsettled = driver.wait_answered()
        survivors = [g for g in (first, second) if g.alive]
        print(
            f"\nrestart ({'first frozen' if frozen else 'racing'}): sent {driver.sent}, duplicates {duplicates}, "
            f"lost {lost}, unsettled {unsettled}, serving: {'first' if first.alive else 'second'}"
        )
        assert (duplicates, lost, unsettled) == (0, 0, 0), first.logged() + second.logged()
        loser = second if first.alive else first
        assert loser.wait(30) == 3, loser.logged()
        assert len(survivors) == 1, "exactly one gated serves the store afterwards"
        assert "store lock lost" in first.logged()
        if frozen:
            assert second.alive
    finally:
        first.stop()
        second.stop()


def test_a_standby_takes_over_from_a_killed_holder_within_seconds(
    tmp_path: Path, private_pg: PrivatePostgres, cluster: Store
) -> None:
    holder = gated(tmp_path, private_pg, "holder").start()
    standby = gated(tmp_path, private_pg, "standby", "--standby")
    try:
        holder.wait_logged("gated running")
        standby.start().wait_logged("standby:")
        driver = Driver(cluster, 120).start()
        time.sleep(3.0)
        holder.kill()
        killed = time.monotonic()
        standby.wait_logged("gated running", timeout=30)
        took_over = time.monotonic() - killed
        driver.join()
        duplicates, lost, unsettled = driver.wait_answered()
        print(f"\nstandby: took over in {took_over:.1f}s; duplicates {duplicates}, lost {lost}, unsettled {unsettled}")
        assert (duplicates, lost, unsettled) == (0, 0, 0), holder.logged() + standby.logged()
        assert took_over < 10.0
    finally:
        holder.stop()
        standby.stop()


def test_gated_waits_for_a_database_that_is_down_at_start(
    tmp_path: Path, private_pg: PrivatePostgres, cluster: Store, unused_tcp_port: int
) -> None:
    token = "t" * 32
    cluster.set_group_web_token("g0", _hash(token))
    private_pg.stop()
    server = Gated(
        tmp_path / "data",
        tmp_path / "gated.log",
        args=["--http", f"127.0.0.1:{unused_tcp_port}"],
        env={**FAST, "KANMON_STORE_URL": private_pg.url},
    ).start()
    base = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        _wait_http(base, server)
        time.sleep(2.0)
        assert server.alive, server.logged()  # no crash-loop: it waits
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and "store" in " ".join(ready.json()["reasons"]), ready.text
        post = httpx.post(
            f"{base}/web/g0/messages", json={"content": "hi"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert post.status_code == 503
        private_pg.start()
        server.wait_logged("gated running", timeout=30)
        _wait_ready(base, server)  # once its loop has ticked (the first tick follows "gated running")
        post = httpx.post(
            f"{base}/web/g0/messages", json={"content": "hi"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert post.status_code == 200, post.text
        deadline = time.monotonic() + 30
        while not any(r.content == "echo: hi" for r in cluster.new_messages(0)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(r.content == "echo: hi" for r in cluster.new_messages(0))
        log = server.logged()
        assert log.count("store unavailable") == 1, log  # said once on entering the state …
        assert log.count("store reachable again") == 1, log  # … and once on leaving it
    finally:
        server.stop()


def _hash(token: str) -> str:
    from kanmon.web.tokens import token_hash

    return token_hash(token)


def _wait_http(base: str, server: Gated) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return
        except httpx.TransportError:
            assert server.alive, server.logged()
            time.sleep(0.1)
    raise AssertionError(f"no HTTP answer from {base}:\n{server.logged()}")


def _wait_ready(base: str, server: Gated, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (ready := httpx.get(f"{base}/readyz")).status_code != 200:
        assert server.alive and time.monotonic() < deadline, f"{ready.text}\n{server.logged()}"
        time.sleep(0.1)
