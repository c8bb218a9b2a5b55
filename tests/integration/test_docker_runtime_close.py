"""Closing a DockerRuntime gives its connections to the engine back, but only those of the client it made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kanmon.container.docker import DockerRuntime

pytestmark = pytest.mark.docker


def pools(client: Any) -> Any:
    """The client's connection pools to the engine (urllib3's PoolManager under its requests session)."""
    return client.api.get_adapter(client.api.base_url).pools


async def test_close_releases_the_connections_of_the_client_it_made(tmp_path: Path, docker_client: Any) -> None:
    runtime = DockerRuntime(data_dir=tmp_path)
    assert await runtime.available()
    made = runtime._client  # the SDK client it made on first use
    assert made is not None and len(pools(made)) > 0, "talking to the engine leaves pooled connections"
    runtime.close()
    runtime.close()  # idempotent
    assert len(pools(made)) == 0


async def test_close_leaves_a_client_it_was_given_to_its_owner(tmp_path: Path, docker_client: Any) -> None:
    runtime = DockerRuntime(data_dir=tmp_path, client=docker_client)
    assert await runtime.available()
    before = len(pools(docker_client))
    runtime.close()
    assert before > 0 and len(pools(docker_client)) == before
    assert docker_client.ping(), "the caller's client still talks to the engine"
