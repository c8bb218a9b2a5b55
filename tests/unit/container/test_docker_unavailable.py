"""DockerRuntime when no engine answers: one clear error type, no crash."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from kanmon.container.base import RunSpec
from kanmon.container.docker import DockerRuntime
from kanmon.container.errors import RuntimeUnavailable


def unreachable(tmp_path: Path) -> DockerRuntime:
    def factory() -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", timeout=2)

    return DockerRuntime(data_dir=tmp_path, client_factory=factory, retry_attempts=2)


async def test_an_unreachable_engine_is_reported_unavailable(tmp_path: Path) -> None:
    assert not await unreachable(tmp_path).available()


async def test_starting_a_run_without_an_engine_raises_runtime_unavailable(tmp_path: Path) -> None:
    spec = RunSpec(run_id="r1", instance="t", folder="support", group_dir=tmp_path / "g", image="agent:1")
    with pytest.raises(RuntimeUnavailable, match="Docker engine unavailable"):
        await unreachable(tmp_path).start(spec)


async def test_listing_runs_without_an_engine_raises_runtime_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable):
        await unreachable(tmp_path).list_runs("t")
