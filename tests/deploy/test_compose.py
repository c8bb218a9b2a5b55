"""The Docker Compose deployment (compose.yaml, Dockerfile, docs/deploy.md) on a real engine, through pytest-docker.

scripts/images.sh makes everything locally first (cached by content hash, so only a changed tree builds): the gated
image from the Dockerfile on the local python image without network, a PostgreSQL image from Debian's postgresql
package, and a compose v2 CLI. Then the project comes up with nothing pulled, and the scenario runs the way an
operator would: wait for /readyz, add a group with `docker compose exec gated gated group add`, talk to it through the
web chat's HTTP API, and see the echo agent answer, run by the containerised gated as a sibling container on the host
engine with its group folder bind-mounted from the host path (``host_data_dir``). Then `gated` is restarted and
everything is still there, because it lives in PostgreSQL; finally `down -v` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
GATED_UID = 1000  # the Dockerfile's default user, and the agents' (runtime.docker.user)
READY_TIMEOUT = 120.0
REPLY_TIMEOUT = 60.0
RECORD = "inputs.jsonl"  # the echo agent appends each run's input document here, in its group folder


def service_missing(config: pytest.Config, what: str, why: str) -> None:
    """tests/conftest.py's ``service_missing``: skip loudly, fail under CI=true."""
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", None) or "/").resolve() == TESTS / "conftest.py":
            plugin.service_missing(what, why)
    raise AssertionError("tests/conftest.py is not loaded")


# ------------------------------------------------------------------------------------------------ what is built
@dataclass(frozen=True)
class Built:
    """What scripts/images.sh made: the compose command and the two images."""

    compose: str
    gated_image: str
    postgres_image: str


@pytest.fixture(scope="session")
def built(request: pytest.FixtureRequest, docker_client: Any) -> Built:
    """The deployment's images and compose CLI (a no-op when the tree is unchanged since scripts/services.sh ran)."""
    if os.geteuid() != 0:
        service_missing(request.config, "root", "scripts/images.sh builds the PostgreSQL image's files as uid 999")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "images.sh"), "all"], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"scripts/images.sh failed:\n{done.stderr}"
    made = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in done.stdout.splitlines())
    print(f"scripts/images.sh: {time.monotonic() - started:.1f}s\n{done.stderr}")
    return Built(made["KANMON_COMPOSE"], made["KANMON_IMAGE"], made["KANMON_POSTGRES_IMAGE"])


@pytest.fixture(scope="session")
def recording_echo_image(docker_client: Any, echo_image: str) -> str:
    """The echo agent, also appending its input to ``inputs.jsonl`` in its working directory (the group folder)."""
    import io
    import tarfile

    tag = f"kanmon-test-echo-record:{echo_image.rpartition(':')[2]}"
    dockerfile = f"FROM {echo_image}\nENV ECHO_RECORD={RECORD}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, pull=False, tag=tag, rm=True)
    return tag


# ------------------------------------------------------------------------------------------------ the deployment
@dataclass(frozen=True)
class Deployment:
    """One compose project of compose.yaml, and how to talk to it."""

    built: Built
    project: str
    env_file: Path
    data_dir: Path  # KANMON_DATA: gated's data dir, as the host (and so the engine) sees it
    instance: str
    agent_image: str

    def compose(self, *args: str, timeout: float = 180.0, check: bool = True) -> str:
        """Run ``docker compose … ARGS`` on this project; its output (stdout and stderr)."""
        command = [
            *shlex.split(self.built.compose),
            "--env-file",
            str(self.env_file),
            "-f",
            str(ROOT / "compose.yaml"),
            "-p",
            self.project,
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise AssertionError(f"{shlex.join(args)} exited {done.returncode}:\n{output}")
        return output

    def gated(self, *args: str) -> str:
        """``gated ARGS`` inside the running gated container."""
        return self.compose("exec", "-T", "gated", "gated", *args)

    def psql(self, sql: str) -> str:
        """One query through psql in the postgres container, unaligned and without headers."""
        return self.compose("exec", "-T", "postgres", "psql", "-U", "kanmon", "-d", "kanmon", "-Atc", sql).strip()

    def base_url(self) -> str:
        """The published HTTP port (asked anew each time: a restart may publish it on another port)."""
        endpoint = self.compose("port", "gated", "8080").strip().splitlines()[-1]
        return f"http://127.0.0.1:{endpoint.rpartition(':')[2]}"


def _docker_socket(config: pytest.Config) -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        service_missing(config, "a Docker engine on a unix socket", f"DOCKER_HOST={host}: gated mounts the socket")
    return host.removeprefix("unix://")


@pytest.fixture(scope="session")
def deployment(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    built: Built,
    recording_echo_image: str,
) -> Deployment:
    """The project's settings, as an env file (compose's variables: see compose.yaml and docs/deploy.md)."""
    socket = _docker_socket(request.config)
    data_dir = tmp_path_factory.mktemp("kanmon-data")
    os.chown(data_dir, GATED_UID, GATED_UID)
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KANMON_IMAGE": built.gated_image,
        "KANMON_POSTGRES_IMAGE": built.postgres_image,
        "KANMON_DATA": str(data_dir),
        "DOCKER_SOCKET": socket,
        "DOCKER_GID": str(Path(socket).stat().st_gid),
        "POSTGRES_PASSWORD": f"pw-{uuid.uuid4().hex}",
        "KANMON_HTTP_PUBLISH": "127.0.0.1:",  # 127.0.0.1::8080: a free port on the host's loopback
        "KANMON_INSTANCE": f"kdeploy-{suffix}",
        "KANMON_AGENT_IMAGE": recording_echo_image,
    }
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return Deployment(
        built=built,
        project=f"kanmon-test-{suffix}",
        env_file=env_file,
        data_dir=data_dir,
        instance=env["KANMON_INSTANCE"],
        agent_image=recording_echo_image,
    )


# pytest-docker's fixtures, pointed at compose.yaml and the CLI scripts/images.sh found
@pytest.fixture(scope="session")
def docker_compose_command(deployment: Deployment) -> str:
    return shlex.join([*shlex.split(deployment.built.compose), "--env-file", str(deployment.env_file)])


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(ROOT / "compose.yaml")


@pytest.fixture(scope="session")
def docker_compose_project_name(deployment: Deployment) -> str:
    return deployment.project


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # nothing is built (scripts/images.sh did) and nothing is pulled; /readyz is waited for by the test itself
    return ["up --detach --no-build --pull never"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down --volumes --remove-orphans --timeout 10"]


@pytest.fixture(scope="session")
def torn_down(deployment: Deployment, docker_client: Any) -> Iterator[None]:
    """Set up before docker_services, so it also cleans up when `up` fails (pytest-docker then cleans nothing)."""
    yield
    print(deployment.compose("logs", "--no-color", "--tail", "60", check=False))
    deployment.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
    for container in docker_client.containers.list(
        all=True, filters={"label": f"kanmon.instance={deployment.instance}"}
    ):
        container.remove(force=True)


@pytest.fixture(scope="session")
def running(torn_down: None, deployment: Deployment, docker_services: Any) -> Deployment:
    """The project, up; ready or not (the test waits for /readyz)."""
    return deployment


# ------------------------------------------------------------------------------------------------ helpers
def readyz(base_url: str) -> tuple[int, Any]:
    try:
        response = httpx.get(f"{base_url}/readyz", timeout=5)
        return response.status_code, response.json()
    except (httpx.HTTPError, ValueError) as exc:  # not listening yet, or not gated's answer
        return 0, str(exc)


def wait_ready(deployment: Deployment, docker_services: Any) -> str:
    """Wait until gated's /readyz says 200; the base URL."""
    seen: list[Any] = []

    def ready() -> bool:
        try:
            status, body = readyz(deployment.base_url())
        except AssertionError as exc:  # `compose port` before the container is up again
            status, body = 0, str(exc)
        seen.append(body)
        return status == 200

    try:
        docker_services.wait_until_responsive(check=ready, timeout=READY_TIMEOUT, pause=0.25)
    except Exception as exc:
        logs = deployment.compose("logs", "--no-color", "--tail", "40", check=False)
        raise AssertionError(f"/readyz not 200 after {READY_TIMEOUT}s; last: {seen[-1:]}\n{logs}") from exc
    return deployment.base_url()


def web_events(
    base_url: str, folder: str, token: str, until: Callable[[list[dict[str, Any]]], bool], after: int = 0
) -> list[dict[str, Any]]:
    """The web chat's event stream of ``folder`` (topic ''), read until ``until(events)`` holds."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + REPLY_TIMEOUT
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(10.0, read=REPLY_TIMEOUT)
    with httpx.stream(
        "GET", f"{base_url}/web/{folder}/stream", params={"after": after}, headers=headers, timeout=timeout
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            data = json.loads(line.removeprefix("data:")) if line.startswith("data:") else {}
            if "seq" in data:  # a message; `working` events carry no seq
                events.append(data)
                if until(events):
                    return events
            assert time.monotonic() < deadline, f"no such events within {REPLY_TIMEOUT}s; got {events}"
    raise AssertionError(f"the stream ended early; got {events}")


def replies(events: list[dict[str, Any]]) -> list[str]:
    return [event["content"] for event in events if event["role"] == "assistant"]


def post(base_url: str, folder: str, token: str, content: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/web/{folder}/messages",
        json={"content": content},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def recorded_inputs(deployment: Deployment, folder: str) -> list[dict[str, Any]]:
    """The input documents the echo agent recorded in its group folder, read on the host."""
    record = deployment.data_dir / "groups" / folder / RECORD
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------ tests
def test_the_gated_image_runs_gated_as_a_non_root_user_with_a_readyz_healthcheck(
    built: Built, docker_client: Any
) -> None:
    config = docker_client.images.get(built.gated_image).attrs["Config"]
    assert config["User"] == f"{GATED_UID}:{GATED_UID}"
    assert config["Entrypoint"] == ["gated"]
    assert config["Cmd"] == ["run"]
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    assert "KANMON_DATA_DIR=/var/lib/kanmon" in config["Env"]
    # it runs, and `gated` sees its settings from the environment like compose gives them
    shown = docker_client.containers.run(
        built.gated_image, ["config", "show"], environment={"KANMON_HOST_DATA_DIR": "/srv/kanmon"}, remove=True
    ).decode()
    assert re.search(r"^host_data_dir\s+/srv/kanmon\s+KANMON_HOST_DATA_DIR", shown, re.MULTILINE), shown


def test_compose_up_serves_the_echo_agent_from_a_sibling_container_and_keeps_state_in_postgres(
    running: Deployment, docker_services: Any, docker_client: Any
) -> None:
    deployment = running
    started = time.time()
    base_url = wait_ready(deployment, docker_services)

    # a group on the docker runtime, added the way an operator would; its web token is printed once
    added = deployment.gated("group", "add", "echo", "--runtime", "docker", "--image", deployment.agent_image, "--web")
    match = re.search(r"#token=([A-Za-z0-9_-]+)", added)
    assert match, added
    token = match.group(1)

    posted = post(base_url, "echo", token, "hello from the host")
    events = web_events(base_url, "echo", token, until=lambda seen: bool(replies(seen)))
    assert [e["content"] for e in events] == ["hello from the host", "echo: hello from the host"]
    assert events[0]["seq"] == posted["seq"]

    # the agent ran in a container of its own on the host engine, started by the containerised gated ...
    agent_starts = [
        event
        for event in docker_client.events(
            since=int(started) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": "container", "event": "start", "label": [f"kanmon.instance={deployment.instance}"]},
        )
    ]
    assert [event["Actor"]["Attributes"]["image"] for event in agent_starts] == [deployment.agent_image]
    # ... with its group folder bind-mounted from the host's data dir (host_data_dir), where gated had prepared it
    first = recorded_inputs(deployment, "echo")
    assert len(first) == 1, "the agent's group folder is not the host's KANMON_DATA/groups/echo"
    assert "hello from the host" in first[0]["prompt"]
    assert not (deployment.data_dir / "kanmon.db").exists(), "gated must use PostgreSQL, not its SQLite default"

    # restart gated: the group, the web token, the conversation and the session all live in PostgreSQL
    deployment.compose("restart", "gated")
    base_url = wait_ready(deployment, docker_services)
    assert re.search(r"^echo\s+.*runtime=docker", deployment.gated("group", "list"), re.MULTILINE)
    replayed = web_events(base_url, "echo", token, until=lambda seen: len(seen) >= 2)
    assert [e["content"] for e in replayed] == ["hello from the host", "echo: hello from the host"]

    post(base_url, "echo", token, "still there?")
    after = replayed[-1]["seq"]
    events = web_events(base_url, "echo", token, after=after, until=lambda seen: bool(replies(seen)))
    assert [e["content"] for e in events] == ["still there?", "echo: still there?"]
    second = recorded_inputs(deployment, "echo")
    assert len(second) == 2
    assert second[1]["sessionId"], "the restarted gated resumes the group's session"
    assert deployment.psql("select count(*) from messages where chat_jid = 'web:echo'") == "4"

    # down with volumes: nothing of the project is left, not even the agents' containers
    deployment.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")
    project = {"label": f"com.docker.compose.project={deployment.project}"}
    assert docker_client.containers.list(all=True, filters=project) == []
    assert docker_client.volumes.list(filters=project) == []
    assert docker_client.containers.list(all=True, filters={"label": f"kanmon.instance={deployment.instance}"}) == []
