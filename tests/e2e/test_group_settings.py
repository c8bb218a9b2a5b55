"""A group's settings, set from the CLI, are what its agent gets, from its next run on; a real ``gated run``.

* ``gated group set`` while gated runs: the next run sees the new environment, and a rotated secret file is read
  again at each run's start;
* a secret that cannot be read fails the run's start, which is retried and then dead-lettered, the reason (the
  secret's name, never a value) in the log; a retry reads its group afresh, so a fix made meanwhile counts, even
  before the loop's next tick;
* on Docker, a group added with env, a secret, a read-only and a writable mount and a user-defined network gets
  exactly those: the probe agent reports what it sees, ``docker inspect`` shows the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kanmon.gateway import DEAD_LETTER_TEXT
from kanmon.queue import Lane, LaneResult, RetryPolicy
from kanmon.store import Store
from tests.gated_process import Gated
from tests.gateway_harness import process_group, running_gateway
from tests.probe_world import RELEASE, agent_containers, install_probe, probe_reports, replies, sha256, wait_for
from tests.probe_world import gated_cli as gated

FAST = {"KANMON_POLL_INTERVAL": "0.2", "KANMON_RETRY_BASE_DELAY": "0.2", "KANMON_MAX_ATTEMPTS": "2"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, Gated, Store]]:
    """A data dir with a file secret (``TOKEN``) and an env secret (``MISSING``, whose variable gated lacks), a
    gated (not started) and the store."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    config = f"secrets:\n  TOKEN:\n    file: {tmp_path / 'token'}\n  MISSING:\n    env: KANMON_TEST_UNSET_SECRET\n"
    (data_dir / "kanmon.yaml").write_text(config)
    gate = Gated(data_dir, tmp_path / "gated.log", env={**FAST, "KANMON_TEST_UNSET_SECRET": ""})
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    yield data_dir, gate, store
    gate.stop()
    store.close()


def test_a_change_applies_from_the_next_run_and_a_rotated_secret_is_read_again(
    tmp_path: Path, world: tuple[Path, Gated, Store]
) -> None:
    data_dir, gate, store = world
    (tmp_path / "token").write_text("first-token-value")
    gated(data_dir, "group", "add", "corp", "--env", "GREETING=one", "--env", "PROBE_ENV=GREETING", "--secret", "TOKEN")
    gated(data_dir, "group", "set", "corp", *install_probe("process", data_dir / "groups" / "corp"))
    gated(data_dir, "route", "add", "--target", "corp")
    gate.start()
    gated(data_dir, "send", "telegram:1", "first")
    [first] = probe_reports(store, 1, gate)
    assert first["env"] == {"GREETING": "one"} and first["secrets"] == {"TOKEN": sha256("first-token-value")}

    # while gated runs: the group changes, and the secret file is rotated
    gated(data_dir, "group", "set", "corp", "--env", "GREETING=two")
    (tmp_path / "token").write_text("second-token-value\n")
    gated(data_dir, "send", "telegram:1", "second")
    second = probe_reports(store, 2, gate)[1]
    assert second["env"] == {"GREETING": "two"} and second["secrets"] == {"TOKEN": sha256("second-token-value")}

    gated(data_dir, "group", "set", "corp", "--unset-secret", "TOKEN", "--unset-env", "GREETING")
    gated(data_dir, "send", "telegram:1", "third")
    third = probe_reports(store, 3, gate)[2]
    assert third["env"] == {"GREETING": None} and third["secrets"] == {}


def test_a_secret_that_cannot_be_read_fails_the_run_start_then_dead_letters_naming_it(
    tmp_path: Path, world: tuple[Path, Gated, Store]
) -> None:
    data_dir, gate, store = world
    gated(data_dir, "group", "add", "corp", "--secret", "MISSING")
    gated(data_dir, "group", "set", "corp", *install_probe("process", data_dir / "groups" / "corp"))
    gated(data_dir, "route", "add", "--target", "corp")
    gate.start()
    gated(data_dir, "send", "telegram:1", "hello")
    wait_for(lambda: DEAD_LETTER_TEXT in [m.content for m in store.new_messages(0, 1000)], "the dead letter", gate)
    reason = "secret MISSING: the environment variable KANMON_TEST_UNSET_SECRET of gated is empty"
    assert gate.logged().count(f"could not start: {reason}") == 2, gate.logged()  # max_attempts: 2
    assert {run.error for run in store.recent_runs()} == {f"start failed: {reason}"}
    assert replies(store) == []  # no agent ran

    # the file secret, once it exists, is read at the next start: nothing to restart
    (tmp_path / "token").write_text("now-it-exists")
    gated(data_dir, "group", "set", "corp", "--unset-secret", "MISSING", "--secret", "TOKEN")
    gated(data_dir, "send", "telegram:1", "again")
    [report] = probe_reports(store, 1, gate)
    assert report["secrets"] == {"TOKEN": sha256("now-it-exists")}


async def test_a_retry_reads_its_group_afresh_without_waiting_for_a_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a poll interval far beyond the test: nothing refreshes the loop's cached configuration in between
    group = process_group("corp", secrets=["NOT_CONFIGURED"])
    retry = RetryPolicy(max_attempts=3, base_delay=1.0)
    async with running_gateway(tmp_path / "data", [group], poll_interval=60, retry=retry) as h:
        await h.send("web:corp", "hello")
        await h.wait_for(lambda: "could not start" in caplog.text, "the first start to fail")
        assert "secret NOT_CONFIGURED: it is not configured in the secrets: section" in caplog.text
        h.store.update_group_config("corp", lambda config: {k: v for k, v in config.items() if k != "secrets"})
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello"], "the retry to answer")
        assert caplog.text.count("could not start") == 1


async def test_a_group_the_loops_cached_configuration_does_not_know_is_read_not_dead_lettered(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=60) as h:
        await h.send("web:corp", "one")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: one"], "the first answer")
        h.gateway.registry.groups.pop("corp")  # as if added after the last tick: the cache does not know it yet
        assert await h.gateway.runner.run_lane(Lane("corp")) is LaneResult.OK  # read from the store; nothing waits


@pytest.mark.docker
def test_a_docker_group_gets_exactly_its_env_secret_mounts_limits_and_network(
    tmp_path: Path, docker_client: Any, echo_image: str
) -> None:
    # Given a user-defined network, a read-only and a writable allowed root, and a file secret
    network = docker_client.networks.create(f"kanmon-test-{uuid.uuid4().hex[:8]}")
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    (shared / "docs").mkdir(parents=True)
    (shared / "docs" / "hello.txt").write_text("hello from the host")
    scratch.mkdir()
    scratch.chmod(0o777)  # the agent (1000:1000) writes here
    (tmp_path / "token").write_text("docker-token-value")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    allowlist = f"runtime:\n  mount_allowlist:\n    - {shared}\n    - {scratch}:rw\n"
    (data_dir / "kanmon.yaml").write_text(f"secrets:\n  TOKEN: file:{tmp_path / 'token'}\n{allowlist}")
    gate = Gated(data_dir, tmp_path / "gated.log", env=FAST)
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        # When a group is added with all of it, from the CLI
        probe = {
            "PROBE_ENV": "GREETING,HOME,TOKEN",
            "PROBE_READ": "/data/docs/hello.txt",
            "PROBE_WRITE": "/data/scratch/out.txt,/data/docs/out.txt",
            "PROBE_WAIT_FOR": RELEASE,
        }
        env = [arg for key, value in {"GREETING": "hi", **probe}.items() for arg in ("--env", f"{key}={value}")]
        gated(data_dir, "group", "add", "corp", "--image", echo_image, *env, "--secret", "TOKEN",
              "--mount", f"{shared / 'docs'}:/data/docs", "--mount", f"{scratch}:/data/scratch:rw",
              "--network", network.name, "--memory", "128m", "--cpus", "0.5", "--pids", "64")  # fmt: skip
        gated(data_dir, "group", "set", "corp", *install_probe("docker", data_dir / "groups" / "corp"))
        gated(data_dir, "route", "add", "--target", "corp")
        gate.start()
        gated(data_dir, "send", "telegram:1", "hello")
        [seen] = probe_reports(store, 1, gate)

        # Then the agent sees its env (the secret not among it), the secret on stdin, and its mounts as asked
        assert seen["env"] == {"GREETING": "hi", "HOME": "/home/agent", "TOKEN": None}
        assert seen["secrets"] == {"TOKEN": sha256("docker-token-value")}
        assert seen["read"] == {"/data/docs/hello.txt": "hello from the host"}
        assert seen["write"] == {"/data/scratch/out.txt": "ok", "/data/docs/out.txt": "error: EROFS"}
        assert (scratch / "out.txt").read_text() == "written by the probe agent\n"
        assert not (shared / "docs" / "out.txt").exists()
        # and its container is on the network, with the mounts and limits of the group
        [container] = agent_containers(docker_client, gate)
        info = docker_client.api.inspect_container(container.id)
        assert info["HostConfig"]["NetworkMode"] == network.name
        assert list(info["NetworkSettings"]["Networks"]) == [network.name]
        mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in info["Mounts"]}
        assert mounts["/data/docs"] == (str((shared / "docs").resolve()), False)
        assert mounts["/data/scratch"] == (str(scratch.resolve()), True)
        assert mounts["/home/agent"][1] is True and len(mounts) == 3
        host = info["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (128 << 20, 500_000_000, 64)

        (data_dir / "groups" / "corp" / RELEASE).write_text("")
        wait_for(lambda: [r for r in store.recent_runs() if r.status == "ok"], "the run to end", gate)
        assert gate.stop() == 0
    finally:
        gate.stop()
        store.close()
        network.remove()
