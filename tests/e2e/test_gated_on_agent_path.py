"""A process group whose command is ``gated agent echo`` (as the README's examples add them) runs the ``gated`` of
this installation, even when gated itself was started as ``.venv/bin/gated`` with no virtualenv on its PATH.

A newcomer's group added that way under ``scripts/demo.sh`` was dead-lettered: ``command 'gated' not found``.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

from kanmon.gateway.spec import RunDefaults, build_spec
from kanmon.store import Group
from tests.gateway_harness import running_gateway

SCRIPTS = sysconfig.get_path("scripts")
README_GROUP = Group(folder="echo2", container_config={"runtime": "process", "command": ["gated", "agent", "echo"]})


@pytest.fixture
def path_without_gated(monkeypatch: pytest.MonkeyPatch) -> str:
    path = os.pathsep.join(part for part in os.environ.get("PATH", "").split(os.pathsep) if part and part != SCRIPTS)
    monkeypatch.setenv("PATH", path)
    return path


async def test_a_group_running_gated_agent_echo_is_answered(tmp_path: Path, path_without_gated: str) -> None:
    async with running_gateway(tmp_path / "data", [README_GROUP]) as h:
        await h.send("web:echo2", "hello")
        await h.settled()
        assert h.replies("web:echo2") == ["echo: hello"]


def test_the_agent_path_keeps_its_own_order_and_ends_with_gateds_scripts(
    tmp_path: Path, path_without_gated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = RunDefaults(instance="t", data_dir=tmp_path, runtime="process")
    path = build_spec(README_GROUP, defaults, run_id="r1").env["PATH"]
    assert path.split(os.pathsep) == [*path_without_gated.split(os.pathsep), SCRIPTS]
    monkeypatch.setenv("PATH", path)  # already there: not added twice
    assert build_spec(README_GROUP, defaults, run_id="r2").env["PATH"] == path
