"""gated closes the runtimes it made when it stops, and leaves runtimes it was given to whoever gave them."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.container import AgentCall, InProcessRuntime
from kanmon.container.docker import DockerRuntime
from kanmon.gated.daemon import Daemon
from kanmon.gated.settings import Settings
from kanmon.store import Store, upgrade
from tests.cli_world import settings_of, sqlite_store


async def silent_agent(call: AgentCall) -> int:
    return 0


class ClosingCounted(InProcessRuntime):
    """An in-process runtime that counts how often it was closed."""

    def __init__(self) -> None:
        super().__init__(silent_agent)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with sqlite_store(tmp_path) as opened:  # the store gated's settings for tmp_path name
        upgrade(opened.engine)
        yield opened


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_of(tmp_path)


async def serve_briefly(daemon: Daemon) -> None:
    """Run ``daemon`` until it serves, then stop it as an operator does (SIGTERM) and wait until it has stopped."""
    ready = asyncio.Event()
    daemon.on_ready = lambda _: ready.set()
    serving = asyncio.create_task(daemon.run())
    await asyncio.wait_for(ready.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 10)


async def test_the_runtimes_gated_made_are_closed_when_it_stops(settings: Settings, store: Store) -> None:
    daemon = Daemon(settings, store)
    docker = daemon.own_runtimes["docker"]
    assert isinstance(docker, DockerRuntime) and not docker.closed
    await serve_briefly(daemon)
    assert docker.closed


async def test_runtimes_given_to_gated_are_left_open(settings: Settings, store: Store) -> None:
    given = ClosingCounted()
    daemon = Daemon(settings, store, runtimes={"inprocess": given})
    assert daemon.own_runtimes == {}
    await serve_briefly(daemon)
    assert given.closed == 0
