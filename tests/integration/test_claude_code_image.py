"""The reference Claude Code agent image on a real Docker engine, with the replaying fake ``claude`` inside.

The image is ``agents/claude-code/Dockerfile.test`` built on the local python image (no registry). It runs once
through kanmon's Docker runtime with a secret in its input document, and then answers a conversation end to end
through a whole gateway, whose session store must hand claude's session back for the second turn (the fake answers
the second turn only when it is resumed with the first turn's session id).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kanmon.container.docker import DockerRuntime
from kanmon.container.events import ExitReason
from tests.claude_code_image import build_claude_code_test_image
from tests.gateway_harness import docker_group, running_gateway
from tests.runtime_events import collect, exited, outputs, run_spec
from tests.unit.agents.claude_code import result_of

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def claude_code_image(docker_client: Any, python_image: str) -> str:
    started = time.monotonic()
    tag = build_claude_code_test_image(docker_client, python_image)
    print(f"claude-code test image {tag}: {time.monotonic() - started:.1f}s")  # the build's cost, with -s
    return tag


@pytest.fixture
def instance(docker_client: Any) -> Iterator[str]:
    """A fresh instance name per test; whatever it leaves behind is removed."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    for container in docker_client.containers.list(all=True, filters={"label": f"kanmon.instance={name}"}):
        container.remove(force=True)


async def test_the_image_answers_and_claude_alone_gets_the_secret(
    claude_code_image: str, docker_client: Any, tmp_path: Path, instance: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    secret = f"sk-ant-api03-{uuid.uuid4().hex}"
    payload = {"prompt": "<messages><message sender=\"Ann\">hello</message></messages>", "assistantName": "Andy",
               "secrets": {"ANTHROPIC_API_KEY": secret}}  # fmt: skip
    spec = run_spec(
        data_dir, "run-1", instance, image=claude_code_image, payload=payload, stop_grace=1.0,
        env={"FAKE_CLAUDE_RECORD": "/home/agent/claude-invocation.json"},
    )  # fmt: skip
    runtime = DockerRuntime(data_dir=data_dir, client=docker_client)
    events = await collect(await runtime.start(spec))

    turn1 = result_of("multi-turn.1.jsonl")
    assert [output.text for output in outputs(events) if output.deliverable] == [turn1["result"]]
    assert outputs(events)[-1].new_session_id == turn1["session_id"]
    end = exited(events)
    assert end.code == 0 and end.reason is ExitReason.EXIT, end.stderr
    invocation = json.loads((spec.group_dir / "claude-invocation.json").read_text())
    assert invocation["env"]["ANTHROPIC_API_KEY"] == secret
    assert invocation["env"]["HOME"] == "/home/agent" and invocation["stdin"] == payload["prompt"]
    assert not any(secret in arg for arg in invocation["argv"])
    assert secret not in end.stderr and secret not in end.stray
    assert secret not in json.dumps(spec.env) and secret not in json.dumps(dict(spec.run_labels()))


async def test_a_stopped_run_stops_claude_too(
    claude_code_image: str, docker_client: Any, tmp_path: Path, instance: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    spec = run_spec(
        data_dir, "run-1", instance, image=claude_code_image, stop_grace=20.0, idle_timeout=2.0, timeout=40.0,
        env={"FAKE_CLAUDE_HANG": 60, "FAKE_CLAUDE_RECORD": "/home/agent/claude-invocation.json"},
    )  # fmt: skip
    started = time.monotonic()
    events = await collect(await DockerRuntime(data_dir=data_dir, client=docker_client).start(spec))
    assert exited(events).reason is ExitReason.IDLE_TIMEOUT
    assert time.monotonic() - started < 20.0, "claude ended on SIGTERM, long before the kill after the grace"
    assert (spec.group_dir / "claude-invocation.json.signals").read_text() == "SIGTERM\n"
    answer = result_of("multi-turn.1.jsonl")["result"]
    assert [output.text for output in outputs(events) if output.deliverable] == [answer], "it stands"


async def test_a_conversation_through_gated_resumes_claudes_session(
    claude_code_image: str, docker_client: Any, tmp_path: Path, instance: str
) -> None:
    group = docker_group("claude", claude_code_image)
    async with running_gateway(tmp_path / "data", [group], instance=instance, docker_client=docker_client) as h:
        await h.send("web:claude", "Hello, I'm Ann")
        first = result_of("multi-turn.1.jsonl")
        await h.wait_for(lambda: h.replies("web:claude") == [first["result"]], "the first answer", timeout=120)
        await h.settled()
        session = h.store.get_session("claude", "")
        assert session is not None and session.session_id == first["session_id"]

        await h.send("web:claude", "What did I ask you about?")
        second = result_of("multi-turn.2.jsonl")
        want = [first["result"], second["result"]]
        await h.wait_for(lambda: h.replies("web:claude") == want, "the answer in the resumed session", timeout=120)
        await h.settled()
        session = h.store.get_session("claude", "")
        assert session is not None and session.session_id == second["session_id"]


def test_the_test_image_has_the_real_images_layout(claude_code_image: str, docker_client: Any) -> None:
    config = docker_client.images.get(claude_code_image).attrs["Config"]
    assert config["Entrypoint"] == ["python3", "-u", "/opt/kanmon/claude_runner.py"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/home/agent"
    real = (Path(__file__).resolve().parents[2] / "agents" / "claude-code" / "Dockerfile").read_text().splitlines()
    entrypoint = 'ENTRYPOINT ["python3", "-u", "/opt/kanmon/claude_runner.py"]'
    for line in (entrypoint, "USER 1000:1000", "WORKDIR /home/agent"):
        assert line in real


async def test_claudes_mcp_tool_calls_in_the_image_act_once_through_gated(
    claude_code_image: str, docker_client: Any, tmp_path: Path, instance: str
) -> None:
    # the fake claude starts the image's kanmon_mcp.py (the mcp SDK in the image) and calls schedule_task and
    # send_message; the runner writes each as an action block, which gated applies once
    group = docker_group("claude", claude_code_image, {"FAKE_CLAUDE_SCENARIO": "mcp-schedule"})
    async with running_gateway(
        tmp_path / "data", [group], instance=instance, docker_client=docker_client, timezone="Europe/Berlin"
    ) as h:
        await h.send("web:claude", "Remind me about the release every Friday at 9")
        answer = result_of("mcp-schedule.jsonl")["result"]
        await h.wait_for(lambda: answer in h.replies("web:claude"), "claude's answer", timeout=180)
        await h.settled()
        [run] = h.store.recent_runs()
        assert run.status == "ok" and run.error is None, run.error
        [task] = h.store.list_tasks("claude")
        assert (task.prompt, task.kind, task.expression) == ("Remind Ann about the release", "cron", "0 9 * * 5")
        assert (task.created_by, task.chat_jid, task.timezone) == (run.id, "web:claude", "Europe/Berlin")
        sent = [row for row in h.outbound("web:claude") if row.content == "Reminder set for Fridays at 9"]
        assert len(sent) == 1 and sent[0].id.startswith(f"run-{run.id}-")
        assert [action.kind for action in h.store.run_actions(run.id)] == ["schedule", "send"]
