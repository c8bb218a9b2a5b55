"""Agent secrets reach the agent on stdin and nowhere else: a real ``gated run --log-level debug``, a real agent.

Two secret values are planted (one in gated's environment, one in a file outside the data dir, as a Docker or
Kubernetes secret would be). The probe agent (``tests/probe_agent.py``) answers with their sha256, which proves it
received them without repeating them, and then waits, so the test can look at the live agent: its
``/proc/<pid>/environ`` and ``cmdline`` and its wrapper's (process runtime), or ``docker inspect`` of its container,
the container's output and its first process's ``/proc`` entries on the host (docker runtime). Afterwards every
byte kanmon wrote is searched: the data dir (the SQLite store, the run directories, the group folder), gated's DEBUG
log, ``/metrics`` and ``/readyz``, ``gated config show`` and ``gated group show``. None of them may hold a value.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from kanmon.store import Store
from tests.gated_process import Gated
from tests.probe_world import RELEASE, agent_containers, install_probe, probe_reports, replies, sha256, wait_for
from tests.probe_world import gated_cli as gated

ENV_SOURCE = "KANMON_TEST_PLANTED_SECRET"  # a KANMON_TEST_ variable: gated never takes it for a typo of its own


def found_in(data: bytes, planted: dict[str, str]) -> list[str]:
    """The names of the planted values present in ``data``."""
    return [name for name, value in planted.items() if value.encode() in data]


def scan(root: Path, planted: dict[str, str]) -> list[str]:
    """``path: name`` for every file under ``root`` holding a planted value."""
    files = [path for path in sorted(root.rglob("*")) if path.is_file()]
    return [f"{path}: {name}" for path in files for name in found_in(path.read_bytes(), planted)]


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, str]:
    """Two unique secret values: ENV_KEY in gated's environment, FILE_KEY in a file outside the data dir."""
    values = {"ENV_KEY": f"planted-env-{uuid.uuid4().hex}", "FILE_KEY": f"planted-file-{uuid.uuid4().hex}"}
    secret_file = tmp_path / "run-secrets" / "file_key"
    secret_file.parent.mkdir()
    secret_file.write_text(values["FILE_KEY"] + "\n")  # one trailing newline, as `echo … >` leaves it: not part of it
    return values


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose kanmon.yaml says where the two secrets come from (never what they are)."""
    path = tmp_path / "data"
    path.mkdir()
    path.chmod(0o755)
    secrets = f"secrets:\n  ENV_KEY:\n    env: {ENV_SOURCE}\n  FILE_KEY: file:{tmp_path / 'run-secrets' / 'file_key'}\n"
    (path / "kanmon.yaml").write_text(secrets)
    return path


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_secret_reaches_the_agent_on_stdin_and_nowhere_else(
    request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path, planted: dict[str, str], runtime: str
) -> None:
    docker_client: Any = request.getfixturevalue("docker_client") if runtime == "docker" else None
    image = ["--image", request.getfixturevalue("echo_image")] if runtime == "docker" else []
    gated(data_dir, "group", "add", "corp", *image, "--secret", "ENV_KEY", "--secret", "FILE_KEY",
          "--env", f"PROBE_WAIT_FOR={RELEASE}")  # fmt: skip
    group_dir = data_dir / "groups" / "corp"
    gated(data_dir, "group", "set", "corp", *install_probe(runtime, group_dir))
    gated(data_dir, "route", "add", "--target", "corp")
    env = {ENV_SOURCE: planted["ENV_KEY"], "KANMON_POLL_INTERVAL": "0.2"}
    gate = Gated(data_dir, tmp_path / "gated.log", args=["--http", "127.0.0.1:0", "--log-level", "debug"], env=env)
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        gate.start()
        gate.wait_logged("gated running", timeout=60)
        url = re.search(r"http=(http://[0-9.:]+)", gate.logged()).group(1)  # type: ignore[union-attr]
        gated(data_dir, "send", "telegram:1", "hello")

        # the agent received both values: it says so with their digests, never the values
        [seen] = probe_reports(store, 1, gate)
        assert seen["secrets"] == {name: sha256(value) for name, value in planted.items()}
        assert (seen["secret_in_env"], seen["secret_in_argv"]) == (False, False)
        assert found_in(replies(store)[0].content.encode(), planted) == []

        # while it runs: not in the live agent's environment, argv, labels or container configuration
        live: dict[str, bytes] = {}
        if runtime == "process":
            for pid in (seen["pid"], seen["ppid"]):  # the agent and the wrapper that started it
                for part in ("environ", "cmdline"):
                    live[f"/proc/{pid}/{part}"] = Path(f"/proc/{pid}/{part}").read_bytes()
            assert live[f"/proc/{seen['pid']}/cmdline"], "the agent is still running"
        else:
            [container] = agent_containers(docker_client, gate)
            info = docker_client.api.inspect_container(container.id)
            live["docker inspect"] = json.dumps(info).encode()
            live["docker logs"] = container.logs(stdout=True, stderr=True)
            assert b"PROBE_WAIT_FOR" in live["docker inspect"], "the inspection shows the container's environment"
            # the container's first process (docker's init) as the host sees it: its environment is the container's
            for part in ("environ", "cmdline"):
                live[f"/proc/{info['State']['Pid']}/{part}"] = Path(f"/proc/{info['State']['Pid']}/{part}").read_bytes()
            assert b"PROBE_WAIT_FOR" in live[f"/proc/{info['State']['Pid']}/environ"]
        live["run directories"] = b"".join(p.read_bytes() for p in (data_dir / "runs").rglob("*") if p.is_file())
        with httpx.Client(base_url=url, timeout=30) as client:
            live["/metrics"] = client.get("/metrics").content
            live["/readyz"] = client.get("/readyz").content
        assert {where: found_in(data, planted) for where, data in live.items()} == {where: [] for where in live}

        (group_dir / RELEASE).write_text("")
        wait_for(lambda: [r for r in store.recent_runs() if r.status == "ok"], "the run to end", gate)
        assert gate.stop() == 0
    finally:
        gate.stop()
        store.close()

    # afterwards: nothing kanmon wrote holds a value (the store, its WAL, the run directories, the group folder)
    assert scan(data_dir, planted) == []
    log = gate.logged()
    assert "could not start" not in log and "run finish" in log, log
    assert found_in(log.encode(), planted) == []
    shown = gated(data_dir, "config", "show") + gated(data_dir, "group", "show", "corp")
    shown += gated(data_dir, "group", "show", "corp", "--json")
    assert "ENV_KEY=env:" + ENV_SOURCE in shown and "FILE_KEY" in shown
    assert found_in(shown.encode(), planted) == []
