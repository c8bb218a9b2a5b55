"""The Matrix end-to-end tests' fixtures: a running stack and the humans (fails under CI=true without Synapse)."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.matrix_harness import Homeserver, Human, Stack, homeserver_from_env


@pytest.fixture(scope="session")
def synapse() -> Homeserver:
    """The Synapse homeserver of scripts/services.sh (scripts/synapse.sh), as a ``matrix_harness.Homeserver``."""
    homeserver = homeserver_from_env()
    if homeserver is None:
        service_missing("a Synapse homeserver", "KANMON_TEST_SYNAPSE_URL is not set")
    assert homeserver is not None
    try:
        urllib.request.urlopen(f"{homeserver.url}/_matrix/client/versions", timeout=5).close()
    except OSError as exc:
        service_missing("a Synapse homeserver", f"{homeserver.url} does not answer: {exc}")
    return homeserver


@pytest.fixture
async def alice(synapse: Homeserver) -> AsyncIterator[Human]:
    """A human whose invites the bot accepts."""
    human = await Human.login(synapse, synapse.register("alice"))
    yield human
    await human.close()


@pytest.fixture
def stack(tmp_path: Path, synapse: Homeserver, alice: Human) -> Iterator[Stack]:
    """gated and the adapter running, configured by kanmon.yaml; only alice may invite the bot."""
    stack = Stack(tmp_path / "data", synapse, synapse.register("bot"), inviters=[alice.user_id])
    stack.configure()
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
