"""Closing a DockerRuntime gives its connections to the engine back, but only those of the client it made."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from kanmon.container.docker import DockerRuntime
from tests.runtime_events import run_spec

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


async def test_a_run_still_going_when_the_runtime_closes_keeps_running(
    tmp_path: Path, docker_client: Any, echo_image: str
) -> None:
    """What gated leaves running at shutdown is the next gated's to reclaim: closing the runtime must not end it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    runtime = DockerRuntime(data_dir=data_dir)
    spec = run_spec(data_dir, "run-1", f"t{uuid.uuid4().hex[:10]}", image=echo_image, env={"ECHO_HANG": 60})
    handle = await runtime.start(spec)
    try:
        runtime.close()
        assert docker_client.api.inspect_container(handle.container_id)["State"]["Running"]
    finally:
        docker_client.api.remove_container(handle.container_id, force=True)
        handle._close_stream()  # its attach socket, which gated's exit would close
