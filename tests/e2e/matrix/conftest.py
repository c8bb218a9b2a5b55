"""The Matrix end-to-end tests' fixtures: a running stack and the humans (``synapse`` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from matrix_harness import Homeserver, Human, Stack


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
    stack.start_gated()
    stack.start_adapter()
    try:
        yield stack
    finally:
        stack.stop()
