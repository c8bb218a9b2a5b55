"""DockerRuntime against a real Docker engine, with the reference echo agent in a locally built image."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kanmon.container import docker as docker_module
from kanmon.container.base import AllowedMount, Mount, RunSpec
from kanmon.container.docker import DockerRuntime
from kanmon.container.errors import ContainerError, ImageNotFound, RunNotFound, UnsafeMount
from kanmon.container.events import Exited, ExitReason, Heartbeat, Output, RunEvent
from kanmon.container.mounts import directory_identity
from tests.runtime_events import PROMPT, collect, exited, outputs, run_spec

pytestmark = pytest.mark.docker

GIB = 1024**3


@pytest.fixture
def instance(docker_client: Any) -> Iterator[str]:
    """A fresh instance name per test; whatever it leaves behind is removed."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    for container in docker_client.containers.list(all=True, filters={"label": f"kanmon.instance={name}"}):
        container.remove(force=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    path.chmod(0o755)
    return path


@pytest.fixture
def runtime(docker_client: Any, data_dir: Path, tmp_path: Path) -> DockerRuntime:
    allowed = AllowedMount(root=tmp_path / "shared")
    return DockerRuntime(data_dir=data_dir, client=docker_client, output_limit=1024 * 1024, mount_allowlist=[allowed])


def make_spec(image: str, data_dir: Path, instance: str, run_id: str = "run-1", **overrides: Any) -> RunSpec:
    return run_spec(data_dir, run_id, instance, **{"image": image, "stop_grace": 1.0, **overrides})


def containers_of(docker_client: Any, instance: str) -> list[Any]:
    return list(docker_client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}))


async def test_stdin_reaches_the_agent_and_its_output_comes_back(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    events = await collect(await runtime.start(make_spec(echo_image, data_dir, instance)))
    assert isinstance(events[0], Heartbeat)
    assert [o.text for o in outputs(events)] == ["echo: hi & bye", "echo: second"]
    assert exited(events) == Exited(code=0, reason=ExitReason.EXIT, outputs=2, delivered=2)
    assert containers_of(docker_client, instance) == [], "the container is removed once its output is consumed"


async def test_outputs_arrive_in_order_while_the_container_still_runs(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    handle = await runtime.start(make_spec(echo_image, data_dir, instance, env={"ECHO_DELAY": 0.3}))
    events: list[RunEvent] = []
    async for event in handle:
        if isinstance(event, Output) and event.index == 0:
            state = docker_client.api.inspect_container(handle.name)["State"]
            assert state["Running"], "the first output must arrive before the container exits"
        events.append(event)
    assert [o.text for o in outputs(events)] == ["echo: hi & bye", "echo: second"]


@pytest.mark.parametrize(
    ("env", "delivered"),
    [
        pytest.param({"ECHO_EXIT": 3}, 2, id="with-output"),
        pytest.param({"ECHO_EXIT": 3, "ECHO_SILENT": 1}, 0, id="silent"),
    ],
)
async def test_a_non_zero_exit_is_reported_with_whether_there_was_output(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, env: dict[str, Any], delivered: int
) -> None:
    end = exited(await collect(await runtime.start(make_spec(echo_image, data_dir, instance, env=env))))
    assert (end.code, end.reason, end.delivered) == (3, ExitReason.EXIT, delivered)


async def test_heartbeats_keep_a_container_alive_past_its_idle_timeout(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str
) -> None:
    env = {"ECHO_HEARTBEATS": 6, "ECHO_HEARTBEAT_INTERVAL": 0.15}
    spec = make_spec(echo_image, data_dir, instance, env=env, idle_timeout=0.5, timeout=31)
    events = await collect(await runtime.start(spec))
    assert exited(events).reason is ExitReason.EXIT
    assert len(outputs(events)) == 2


async def test_a_silent_container_is_stopped_by_its_idle_timeout(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    spec = make_spec(
        echo_image, data_dir, instance, env={"ECHO_SILENT": 1, "ECHO_HANG": 60}, idle_timeout=0.4, timeout=31
    )
    end = exited(await collect(await runtime.start(spec)))
    assert (end.reason, end.code, end.had_output) == (ExitReason.IDLE_TIMEOUT, 128 + signal.SIGTERM, False)
    assert containers_of(docker_client, instance) == []


async def test_the_hard_timeout_ends_a_container_that_keeps_sending_heartbeats(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str
) -> None:
    env = {"ECHO_HEARTBEATS": 1000, "ECHO_HEARTBEAT_INTERVAL": 0.05}
    spec = make_spec(echo_image, data_dir, instance, env=env, idle_timeout=None, timeout=0.6)
    assert exited(await collect(await runtime.start(spec))).reason is ExitReason.HARD_TIMEOUT


async def test_stop_kills_a_container_that_ignores_sigterm_after_the_grace(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str
) -> None:
    spec = make_spec(echo_image, data_dir, instance, env={"ECHO_IGNORE_TERM": 1, "ECHO_HANG": 60})
    handle = await runtime.start(spec)
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Output):
            await handle.stop(grace=1)
    assert (exited(events).reason, exited(events).code) == (ExitReason.STOPPED, 128 + signal.SIGKILL)


async def test_kill_ends_a_container_at_once(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str
) -> None:
    handle = await runtime.start(make_spec(echo_image, data_dir, instance, env={"ECHO_SILENT": 1, "ECHO_HANG": 60}))
    events: list[RunEvent] = []
    async for event in handle:
        events.append(event)
        if isinstance(event, Heartbeat):
            await handle.kill()
    assert (exited(events).reason, exited(events).code) == (ExitReason.KILLED, 128 + signal.SIGKILL)


async def test_a_container_writing_past_the_output_cap_is_killed(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    spec = make_spec(echo_image, data_dir, instance, env={"ECHO_FLOOD": 2 * 1024 * 1024, "ECHO_HANG": 60})
    end = exited(await collect(await runtime.start(spec)))
    assert (end.reason, end.outputs) == (ExitReason.OUTPUT_LIMIT, 0)
    assert containers_of(docker_client, instance) == []


async def test_containers_run_with_secure_defaults_name_and_labels(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    payload = {"prompt": PROMPT, "secrets": {"API_KEY": "s3cr3t-value"}}
    spec = make_spec(echo_image, data_dir, instance, env={"ECHO_HANG": 60}, payload=payload)
    handle = await runtime.start(spec)
    try:
        info = docker_client.api.inspect_container(handle.container_id)
    finally:
        await handle.kill()
        await collect(handle)
    host = info["HostConfig"]
    assert info["Name"] == f"/kanmon-{instance}-corp-eng-run-1"
    assert {
        k: v for k, v in info["Config"]["Labels"].items() if k in {"kanmon.instance", "kanmon.run", "kanmon.folder"}
    } == {
        "kanmon.instance": instance,
        "kanmon.run": "run-1",
        "kanmon.folder": "corp/eng",
    }
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert (host["PidsLimit"], host["Memory"], host["NanoCpus"]) == (256, GIB, 10**9)
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert not host.get("Privileged")
    assert info["Config"]["User"] == "1000:1000"
    writable = [(m["Destination"], m["Source"]) for m in info["Mounts"] if m["RW"]]
    assert writable == [("/home/agent", str(data_dir / "groups" / "corp" / "eng"))]
    assert "s3cr3t" not in json.dumps(info), "secrets travel on stdin only, never in the container's config"


async def test_the_agent_can_write_only_to_its_group_folder(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str
) -> None:
    await collect(await runtime.start(make_spec(echo_image, data_dir, instance, env={"ECHO_TOUCH": "note.txt"})))
    note = data_dir / "groups" / "corp" / "eng" / "note.txt"
    assert note.read_text() == "written by the echo agent\n"
    assert note.stat().st_uid == 1000
    spec = make_spec(echo_image, data_dir, instance, "run-2", env={"ECHO_TOUCH": "/opt/kanmon/x"})
    end = exited(await collect(await runtime.start(spec)))
    assert end.code != 0
    assert "Read-only file system" in end.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder root's needs root")
@pytest.mark.parametrize(
    ("overrides", "agent"),
    [
        pytest.param({}, (1000, 1000), id="default-user"),
        pytest.param({"user": "2000:2000"}, (2000, 2000), id="group-user"),
    ],
)
async def test_the_agent_can_write_a_group_folder_root_created_and_filled(
    runtime: DockerRuntime,
    echo_image: str,
    data_dir: Path,
    instance: str,
    overrides: dict[str, Any],
    agent: tuple[int, int],
) -> None:
    # Given a group folder made by root (`gated group add` as root, or a restore from backup), files and all
    group = data_dir / "groups" / "corp" / "eng"
    (group / "memory").mkdir(parents=True, mode=0o755)
    (group / "memory" / "notes.md").write_text("restored")
    for path in (group, group / "memory", group / "memory" / "notes.md"):
        os.chown(path, 0, 0)
    # When the agent, running as its own user, writes into its home and into a restored file
    env = {"ECHO_TOUCH": "memory/notes.md"}
    end = exited(await collect(await runtime.start(make_spec(echo_image, data_dir, instance, env=env, **overrides))))
    # Then the run succeeds, and the folder is the agent's
    assert (end.code, end.reason, end.delivered) == (0, ExitReason.EXIT, 2), end.stderr
    assert (group / "memory" / "notes.md").read_text() == "written by the echo agent\n"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in [group, *group.rglob("*")]} == {agent}


async def test_a_group_folder_symlink_leaving_the_data_dir_is_refused(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, tmp_path: Path, docker_client: Any
) -> None:
    (tmp_path / "outside").mkdir()
    (data_dir / "groups" / "corp").mkdir(parents=True)
    (data_dir / "groups" / "corp" / "eng").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeMount):
        await runtime.start(make_spec(echo_image, data_dir, instance))
    assert containers_of(docker_client, instance) == []


@pytest.mark.parametrize("link", ["..", "../..", "../other"], ids=["groups-dir", "data-dir", "other-group"])
async def test_a_group_folder_replaced_by_a_symlink_inside_the_data_dir_is_refused(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any, link: str
) -> None:
    """What the parent group's agent can do to a child nested in its folder (``rmdir eng; ln -s ../.. eng``): the
    child's run would mount the data dir (the store, every group) and give it all to the agent user. Refused, and
    nothing changes owner."""
    (data_dir / "groups" / "other").mkdir(parents=True)
    (data_dir / "groups" / "corp").mkdir()
    (data_dir / "groups" / "corp" / "eng").symlink_to(link)
    before = {p: p.lstat().st_uid for p in [data_dir, *data_dir.rglob("*")]}
    with pytest.raises(UnsafeMount, match="symlink"):
        await runtime.start(make_spec(echo_image, data_dir, instance))
    assert containers_of(docker_client, instance) == []
    assert {p: p.lstat().st_uid for p in [data_dir, *data_dir.rglob("*")]} == before


async def test_a_group_folder_swapped_for_a_symlink_after_its_check_is_caught_before_the_agent_gets_input(
    runtime: DockerRuntime,
    echo_image: str,
    data_dir: Path,
    instance: str,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race the check alone leaves: the parent's agent swaps the child's folder for ``../..`` after kanmon checked
    it and before the engine mounts it. What the engine mounted is compared with what was checked: refused, the
    container removed, the agent never fed."""
    eng = data_dir / "groups" / "corp" / "eng"
    eng.mkdir(parents=True)
    checked = directory_identity

    def check_then_swap(path: Path) -> tuple[int, int]:
        identity = checked(path)
        eng.rename(eng.with_name("eng.real"))
        eng.symlink_to("../..")
        return identity

    monkeypatch.setattr(docker_module, "directory_identity", check_then_swap)
    spec = make_spec(echo_image, data_dir, instance, stdin=b'{"prompt": "must never reach the agent"}\n')
    with pytest.raises(UnsafeMount, match="another folder than the one checked"):
        await runtime.start(spec)
    assert containers_of(docker_client, instance) == []


async def test_extra_mounts_come_only_from_the_allowlist_and_are_read_only(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, tmp_path: Path, docker_client: Any
) -> None:
    (tmp_path / "shared" / "docs").mkdir(parents=True)
    wants_rw = Mount(source=tmp_path / "shared" / "docs", target="/workspace/docs", read_only=False)
    spec = make_spec(echo_image, data_dir, instance, env={"ECHO_HANG": 60}, mounts=(wants_rw,))
    handle = await runtime.start(spec)
    try:
        mounts = {m["Destination"]: m["RW"] for m in docker_client.api.inspect_container(handle.container_id)["Mounts"]}
    finally:
        await handle.kill()
        await collect(handle)
    assert mounts == {"/home/agent": True, "/workspace/docs": False}
    stranger = Mount(source=tmp_path, target="/workspace/all")
    with pytest.raises(UnsafeMount, match="not under any allowed"):
        await runtime.start(make_spec(echo_image, data_dir, instance, "run-2", mounts=(stranger,)))


async def test_a_missing_network_fails_the_start_saying_which_and_leaves_no_container(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    missing = f"kanmon-no-such-net-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ContainerError, match=f"no Docker network '{missing}'.*`docker network create {missing}`"):
        await runtime.start(make_spec(echo_image, data_dir, instance, network=missing))
    assert containers_of(docker_client, instance) == []


async def test_a_writable_mount_under_a_root_made_read_only_since_is_mounted_read_only(
    docker_client: Any, echo_image: str, data_dir: Path, instance: str, tmp_path: Path
) -> None:
    (tmp_path / "scratch").mkdir()
    rw = DockerRuntime(
        data_dir=data_dir,
        client=docker_client,
        mount_allowlist=[AllowedMount(root=tmp_path / "scratch", writable=True)],
    )
    wants_rw = (Mount(source=tmp_path / "scratch", target="/scratch", read_only=False),)
    handle = await rw.start(make_spec(echo_image, data_dir, instance, env={"ECHO_HANG": 60}, mounts=wants_rw))
    try:
        info = docker_client.api.inspect_container(handle.container_id)
        assert {m["Destination"]: m["RW"] for m in info["Mounts"]}["/scratch"] is True
    finally:
        await handle.kill()
        await collect(handle)
    ro = DockerRuntime(
        data_dir=data_dir, client=docker_client, mount_allowlist=[AllowedMount(root=tmp_path / "scratch")]
    )
    handle = await ro.start(make_spec(echo_image, data_dir, instance, "run-2", env={"ECHO_HANG": 60}, mounts=wants_rw))
    try:
        info = docker_client.api.inspect_container(handle.container_id)
        assert {m["Destination"]: m["RW"] for m in info["Mounts"]}["/scratch"] is False
    finally:
        await handle.kill()
        await collect(handle)


async def test_list_runs_returns_only_this_instance_runs_and_leaves_others_alone(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    other = f"{instance}x"
    hang = {"ECHO_HANG": 60}
    mine = await runtime.start(make_spec(echo_image, data_dir, instance, "mine", env=hang))
    theirs = await runtime.start(make_spec(echo_image, data_dir, other, "theirs", env=hang))
    try:
        runs = await runtime.list_runs(instance)
        assert [(r.run_id, r.running) for r in runs] == [("mine", True)]
        with pytest.raises(RunNotFound):
            await runtime.attach(instance, "theirs")
        await mine.kill()
        await collect(mine)
        assert docker_client.api.inspect_container(theirs.container_id)["State"]["Running"], "never touched"
    finally:
        await theirs.kill()
        await collect(theirs)


async def test_attach_replays_a_run_that_finished_while_nobody_watched(
    docker_client: Any, echo_image: str, data_dir: Path, instance: str
) -> None:
    # Given a run whose daemon went away without reading it
    first = DockerRuntime(data_dir=data_dir, client=docker_client)
    abandoned = await first.start(make_spec(echo_image, data_dir, instance, env={}))
    await asyncio.to_thread(docker_client.api.wait, abandoned.container_id, timeout=30)
    # When a restarted daemon lists and attaches to it
    restarted = DockerRuntime(data_dir=data_dir, client=docker_client)
    [info] = await restarted.list_runs(instance)
    assert (info.running, info.exit_code, info.run_id) == (False, 0, "run-1")
    events = await collect(await restarted.attach(instance, "run-1"))
    # Then every output is replayed in order, and the container is removed afterwards
    assert [o.text for o in outputs(events)] == ["echo: hi & bye", "echo: second"]
    assert exited(events).code == 0
    assert containers_of(docker_client, instance) == []
    await abandoned.close()


async def test_attach_follows_a_run_that_is_still_running(
    docker_client: Any, echo_image: str, data_dir: Path, instance: str
) -> None:
    first = DockerRuntime(data_dir=data_dir, client=docker_client)
    abandoned = await first.start(make_spec(echo_image, data_dir, instance, env={"ECHO_DELAY": 0.3}))
    restarted = DockerRuntime(data_dir=data_dir, client=docker_client)
    events = await collect(await restarted.attach(instance, "run-1"))
    assert [o.index for o in outputs(events)] == [0, 1]
    assert exited(events).ok
    await abandoned.close()


async def test_a_missing_image_is_reported_and_never_pulled(
    runtime: DockerRuntime, data_dir: Path, instance: str
) -> None:
    with pytest.raises(ImageNotFound):
        await runtime.start(make_spec("kanmon-test-no-such-image:0", data_dir, instance))


async def test_the_runtime_reports_the_engine_available(runtime: DockerRuntime) -> None:
    assert await runtime.available()


async def test_with_a_host_data_dir_the_engine_mounts_the_group_folder_from_the_host_path(
    echo_image: str, data_dir: Path, instance: str, tmp_path: Path, docker_client: Any
) -> None:
    # gated in a container sees the data dir at data_dir; the engine finds the same directory at another path
    host_view = tmp_path / "host-view"
    host_view.symlink_to(data_dir)
    runtime = DockerRuntime(data_dir=data_dir, host_data_dir=host_view, client=docker_client)
    spec = make_spec(echo_image, data_dir, instance, env={"ECHO_TOUCH": "note.txt", "ECHO_HANG": 60})
    note = data_dir / "groups" / "corp" / "eng" / "note.txt"
    handle = await runtime.start(spec)
    try:
        info = docker_client.api.inspect_container(handle.container_id)
        for _ in range(200):  # the agent writes it through the host path's mount, as soon as it has read its input
            if note.exists():
                break
            await asyncio.sleep(0.05)
    finally:
        await handle.kill()
        await collect(handle)
    assert {m["Destination"]: m["Source"] for m in info["Mounts"]} == {
        "/home/agent": str(host_view / "groups" / "corp" / "eng")
    }
    assert note.read_text() == "written by the echo agent\n"


async def test_a_start_the_engine_refuses_after_attaching_closes_the_attach_socket(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    """The engine refuses an unknown user at start, after gated attached to the container: before, the attach socket
    stayed open until Python's cyclic garbage collector found it (docker-py keeps a cycle), an fd per failed start
    in a daemon meant to run for months (an outside review)."""
    attached: list[tuple[int, str]] = []
    attach = docker_client.api.attach_socket

    def recording(*args: Any, **kwargs: Any) -> Any:
        sock = attach(*args, **kwargs)
        fd = getattr(sock, "_sock", sock).fileno()
        attached.append((fd, str(Path(f"/proc/self/fd/{fd}").readlink())))
        return sock

    docker_client.api.attach_socket = recording
    try:
        with pytest.raises(ContainerError):
            await runtime.start(make_spec(echo_image, data_dir, instance, user="nosuchuser"))
    finally:
        docker_client.api.attach_socket = attach

    def still_open(fd: int, inode: str) -> bool:
        try:
            return str(Path(f"/proc/self/fd/{fd}").readlink()) == inode
        except FileNotFoundError:
            return False

    assert len(attached) == 1
    assert not [fd for fd, inode in attached if still_open(fd, inode)]  # closed at once, not by a later gc
    assert containers_of(docker_client, instance) == []


async def test_a_run_logs_to_an_unrotated_json_file_whatever_the_engine_defaults(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, docker_client: Any
) -> None:
    """A reclaimed run's output is replayed from its container's log, and the replayed blocks must keep the indices
    the live ones had (that is how a reply is not delivered twice): the log config is the run's own, set in full,
    so an engine whose default driver rotates (``max-size``), compresses or keeps no readable log (``journald``,
    ``none``) changes nothing (an outside review)."""
    handle = await runtime.start(make_spec(echo_image, data_dir, instance, env={"ECHO_HANG": 60}))
    try:
        info = docker_client.api.inspect_container(handle.container_id)
    finally:
        await handle.kill()
        await collect(handle)
    limit = 1024 * 1024  # the runtime fixture's output limit
    assert info["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": str(100 * limit), "max-file": "1", "compress": "false"},
    }


async def test_one_source_mounted_at_two_targets_is_at_both_and_a_colon_in_a_path_is_no_separator(
    runtime: DockerRuntime, echo_image: str, data_dir: Path, instance: str, tmp_path: Path, docker_client: Any
) -> None:
    """Binds used to be a dict keyed by host path: a second mount of one source silently replaced the first, and a
    host path with ':' split into a broken ``host:target:mode`` spec (an outside review)."""
    docs, odd = tmp_path / "shared" / "docs", tmp_path / "shared" / "a:b"
    for folder in (docs, odd):
        folder.mkdir(parents=True)
        (folder / "hello.txt").write_text(f"from {folder.name}\n")
    mounts = (
        Mount(source=docs, target="/workspace/docs"),
        Mount(source=docs, target="/workspace/again"),
        Mount(source=odd, target="/workspace/odd"),
    )
    handle = await runtime.start(make_spec(echo_image, data_dir, instance, env={"ECHO_HANG": 60}, mounts=mounts))
    try:
        info = docker_client.api.inspect_container(handle.container_id)
        seen = {}
        for target in ("/workspace/docs", "/workspace/again", "/workspace/odd"):
            done = docker_client.containers.get(handle.container_id).exec_run(["cat", f"{target}/hello.txt"])
            seen[target] = (done.exit_code, done.output.decode())
    finally:
        await handle.kill()
        await collect(handle)
    assert {m["Destination"]: (m["Source"], m["RW"]) for m in info["Mounts"]} == {
        "/home/agent": (str(data_dir / "groups" / "corp" / "eng"), True),
        "/workspace/docs": (str(docs), False),
        "/workspace/again": (str(docs), False),
        "/workspace/odd": (str(odd), False),
    }
    assert seen == {
        "/workspace/docs": (0, "from docs\n"),
        "/workspace/again": (0, "from docs\n"),
        "/workspace/odd": (0, "from a:b\n"),
    }
