"""Helpers of the tests that run the probe agent (``tests/probe_agent.py``) under a real ``gated run``."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kanmon.gated.cli import cli
from kanmon.store import Message, Store
from tests import probe_agent
from tests.gated_process import Gated

RELEASE = "release"  # the file (in the group folder) that lets a waiting probe agent end


def gated_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``gated --data-dir DATA ARGS…`` in this process; fails the test unless it succeeds. Returns its output."""
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sha256(value: str) -> str:
    """How the probe agent reports a secret it received."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def wait_for(condition: Any, what: str, gate: Gated, timeout: float = 90.0) -> Any:
    """Poll ``condition`` until it is truthy and return it; fail with gated's log if gated ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if not gate.alive:
            raise AssertionError(f"gated ended before {what}:\n{gate.logged()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{gate.logged()}")
        time.sleep(0.1)
    return result


def install_probe(runtime: str, group_dir: Path) -> list[str]:
    """Put the probe agent in the group folder; the ``group set`` options that run it on ``runtime``."""
    shutil.copy(probe_agent.__file__, group_dir / "probe_agent.py")
    (group_dir / "probe_agent.py").chmod(0o644)
    if runtime == "process":
        return ["--runtime", "process", "--command", f"{sys.executable} -I probe_agent.py"]
    return ["--command", "python3 -u /home/agent/probe_agent.py"]


def agent_containers(docker_client: Any, gate: Gated, folder: str = "corp") -> list[Any]:
    """The running containers of ``folder``'s runs of this gated (by its instance: other tests' gated run at once)."""
    found = re.search(r"gated running: instance=(\S+)", gate.logged())
    assert found is not None, "gated has not said which instance it is"
    labels = [f"kanmon.folder={folder}", f"kanmon.instance={found.group(1)}"]
    return list(docker_client.containers.list(filters={"label": labels}))


def replies(store: Store) -> list[Message]:
    """The agents' replies so far, in seq order."""
    return [message for message in store.new_messages(0, 100_000) if message.run_id is not None]


def probe_reports(store: Store, count: int, gate: Gated) -> list[dict[str, Any]]:
    """The first ``count`` probe reports (one reply per run), waiting for them."""
    found = wait_for(lambda: len(replies(store)) >= count and replies(store), f"{count} probe replies", gate)
    return [json.loads(message.content) for message in found[:count]]
