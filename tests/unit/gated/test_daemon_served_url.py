"""gated records where it serves HTTP for the links other commands print; a store that cannot take it costs a line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.container import InProcessRuntime
from kanmon.gated.daemon import Daemon
from kanmon.gated.settings import Settings
from kanmon.serving import listen
from kanmon.store import Store, StoreUnavailable, upgrade
from tests.cli_world import settings_of, sqlite_store
from tests.unit.gated.test_daemon_runtimes import serve_briefly, silent_agent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with sqlite_store(tmp_path) as opened:
        upgrade(opened.engine)
        yield opened


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_of(tmp_path)


def daemon_on(settings: Settings, store: Store, address: str) -> Daemon:
    return Daemon(settings, store, listener=listen(address), runtimes={"inprocess": InProcessRuntime(silent_agent)})


async def test_a_wildcard_address_is_recorded_as_this_machines_loopback_and_cleared_at_the_stop(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = daemon_on(settings, store, "0.0.0.0:0")
    assert daemon.listener is not None
    port = daemon.listener.getsockname()[1]
    recorded: list[tuple[str, str | None]] = []
    record = store.set_served_url

    def spied(url: str) -> None:
        record(url)
        recorded.append((url, store.served_url()))

    monkeypatch.setattr(store, "set_served_url", spied)
    await serve_briefly(daemon)
    assert recorded == [(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}"), ("", None)]


async def test_a_store_that_cannot_take_the_address_costs_one_warning_line_each_time_and_nothing_else(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable(url: str) -> None:
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(store, "set_served_url", unavailable)
    with caplog.at_level(logging.WARNING, logger="kanmon.gated.daemon"):
        await serve_briefly(daemon_on(settings, store, "127.0.0.1:0"))  # served and stopped all the same
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("could not record the HTTP address")]
    assert lines == ["could not record the HTTP address for gated's commands (database is locked)"] * 2  # start, stop


async def test_a_store_that_hangs_holds_the_start_and_the_stop_at_most_two_seconds(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def hanging(url: str) -> None:
        release.wait(30)

    monkeypatch.setattr(store, "set_served_url", hanging)
    try:
        with caplog.at_level(logging.WARNING, logger="kanmon.gated.daemon"):
            await serve_briefly(daemon_on(settings, store, "127.0.0.1:0"))  # within serve_briefly's 10 s each way
    finally:
        release.set()
    assert [r.getMessage() for r in caplog.records].count(
        "could not record the HTTP address for gated's commands (timed out)"
    ) == 2


async def test_a_store_other_users_may_read_costs_one_warning_at_start(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A store made before stores were private (an attacker's review: kanmon.db 0644 read by 'nobody')."""
    database = Path(str(store.engine.url.database))
    await serve_briefly(daemon_on(settings, store, "127.0.0.1:0"))
    assert not [r for r in caplog.records if "other local users may read" in r.getMessage()]
    database.chmod(0o644)
    caplog.clear()
    await serve_briefly(daemon_on(settings, store, "127.0.0.1:0"))
    [line] = [r.getMessage() for r in caplog.records if "other local users may read" in r.getMessage()]
    assert f"{database} (mode 0644)" in line and "chmod go-rwx" in line
