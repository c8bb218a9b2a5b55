"""Sessions end to end (SPEC §10): the agent's ``newSessionId`` comes back on the next run, per (folder, topic).

Guards against the anchors' session bugs: a session id that never reaches the next run (every turn starts from
scratch), ``/new`` that does not really reset (arizuko ran commands only on the last message of a batch), topics of
one chat sharing one session, web topics of one folder serialised behind each other, two runs resuming one session at
once (a forum thread and a web topic of one id are two lanes on one session), and an idle session that is resumed
silently after the expiry the group asked for. What each run received is read back from the echo agent's
``ECHO_RECORD`` file in the group folder.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kanmon.gateway.hooks import Hooks, hookimpl
from kanmon.queue import Lane
from kanmon.store import Group
from tests.gateway_harness import (
    RECORD,
    Harness,
    docker_group,
    gateway_answers,
    inputs,
    process_group,
    prompt_texts,
    running_gateway,
)


# ---------------------------------------------------------------------------------------------------- helpers
def session_id(h: Harness, folder: str, topic: str = "") -> str | None:
    session = h.store.get_session(folder, topic)
    return session.session_id if session is not None else None


def recorded(**env: Any) -> dict[str, Any]:
    return {"ECHO_RECORD": RECORD, **env}


def _remove_containers(client: Any, instance: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
        container.remove(force=True)


# ---------------------------------------------------------------------------------------------------- 1. resume
@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
async def test_the_second_run_resumes_the_session_the_first_run_returned(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    instance = f"t{uuid.uuid4().hex[:10]}"
    client: Any = None
    group: Group
    if runtime == "docker":
        client = request.getfixturevalue("docker_client")
        image: str = request.getfixturevalue("echo_image")
        request.addfinalizer(lambda: _remove_containers(client, instance))
        group = docker_group("corp", image, env=recorded())
    else:
        group = process_group("corp", env=recorded())

    async with running_gateway(tmp_path / "data", [group], instance=instance, docker_client=client) as h:
        await h.send("web:corp", "first")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: first"], "the first reply")
        await h.settled()
        first_session = session_id(h, "corp")
        assert first_session is not None

        await h.send("web:corp", "second")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: first", "echo: second"], "the second reply")
        await h.settled()

        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["first"], ["second"]]
        assert "sessionId" not in documents[0]
        assert documents[1]["sessionId"] == first_session
        assert session_id(h, "corp") == first_session
        runs = list(reversed(h.store.recent_runs()))
        assert [(run.status, run.session_id) for run in runs] == [("ok", None), ("ok", first_session)]


# ---------------------------------------------------------------------------------------------------- 2. /new
async def test_new_clears_the_session_and_gives_its_text_to_a_fresh_run(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded())]) as h:
        await h.send("web:corp", "hello")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello"], "the first reply")
        await h.settled()
        assert session_id(h, "corp") is not None

        await h.send("web:corp", "/new")
        await h.wait_for(lambda: gateway_answers(h, "web:corp") == ["Session cleared."], "the /new answer")
        assert session_id(h, "corp") is None

        await h.send("web:corp", "again")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello", "echo: again"], "the reply to 'again'")
        await h.settled()
        second_session = session_id(h, "corp")
        assert second_session is not None

        await h.send("web:corp", "/new some text")
        expected = ["echo: hello", "echo: again", "echo: some text"]
        await h.wait_for(lambda: h.replies("web:corp") == expected, "the reply to the text after /new")
        await h.settled()

        assert gateway_answers(h, "web:corp") == ["Session cleared.", "Session cleared. Processing your message..."]
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["hello"], ["again"], ["some text"]]
        assert ["sessionId" in d for d in documents] == [False, False, False]
        third_session = session_id(h, "corp")
        assert third_session is not None and third_session != second_session
        [*_, last] = h.inbound("web:corp")  # the text went on as the message's own: no copy was posted
        assert (last.content, last.agent_text, last.status) == ("/new some text", "some text", "done")


# ---------------------------------------------------------------------------------------------------- 3. #topics
async def test_hash_topics_of_one_chat_keep_separate_sessions(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded())]) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:1", target="corp")
        for text in ("#a hello", "#b hi", "#a again"):
            await h.send("telegram:1", text)
        expected = ["echo: hello", "echo: hi", "echo: again"]
        await h.wait_for(lambda: h.replies("telegram:1") == expected, "three replies")
        await h.settled()

        documents = inputs(h, "corp")
        assert [(d["topic"], prompt_texts(d)) for d in documents] == [
            ("#a", ["hello"]),
            ("#b", ["hi"]),
            ("#a", ["again"]),
        ]
        session_a, session_b = session_id(h, "corp", "#a"), session_id(h, "corp", "#b")
        assert session_a is not None and session_b is not None and session_a != session_b
        assert ["sessionId" in d for d in documents[:2]] == [False, False]
        assert documents[2]["sessionId"] == session_a
        assert session_id(h, "corp") is None  # the chat's default topic never got a session
        assert all(f'thread="{d["topic"]}"' in d["prompt"] for d in documents)


# ---------------------------------------------------------------------------------------------------- 4. web topics
async def test_two_web_topics_of_one_folder_run_at_the_same_time_in_their_own_sessions(tmp_path: Path) -> None:
    both = {Lane("corp", "t1"), Lane("corp", "t2")}
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded(ECHO_DELAY=1.0))]) as h:
        await h.send("web:corp", "one", topic="t1")
        await h.send("web:corp", "two", topic="t2")

        overlapped = False
        deadline = time.monotonic() + 60
        while not overlapped and time.monotonic() < deadline:
            overlapped = both <= set(h.gateway.queue.running())
            await asyncio.sleep(0.01)
        assert overlapped, "the two topics' runs never ran at the same time"

        await h.wait_for(lambda: sorted(h.replies("web:corp")) == ["echo: one", "echo: two"], "both replies")
        await h.settled()

        topics = {row.content: row.topic for row in h.outbound("web:corp") if row.run_id is not None}
        assert topics == {"echo: one": "t1", "echo: two": "t2"}
        documents = sorted(inputs(h, "corp"), key=lambda d: d["topic"])
        assert [(d["topic"], prompt_texts(d), "sessionId" in d) for d in documents] == [
            ("t1", ["one"], False),
            ("t2", ["two"], False),
        ]
        session_1, session_2 = session_id(h, "corp", "t1"), session_id(h, "corp", "t2")
        assert session_1 is not None and session_2 is not None and session_1 != session_2
        assert sorted((run.topic, run.status) for run in h.store.recent_runs()) == [("t1", "ok"), ("t2", "ok")]


@pytest.mark.parametrize("first", ["telegram:1", "web:corp"])
async def test_a_forum_thread_and_a_web_topic_of_one_id_take_turns_on_their_one_session(
    tmp_path: Path, first: str
) -> None:
    starts: list[str] = []
    counter = SimpleNamespace(run_starting=hookimpl(lambda run_id: starts.append(run_id)))
    group = process_group("corp", env=recorded(ECHO_DELAY=1.0))
    async with running_gateway(tmp_path / "data", [group], hooks=Hooks([("counter", counter)])) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:1", target="corp")
        second = "web:corp" if first == "telegram:1" else "telegram:1"
        await h.send(first, "the first", topic="42")
        await h.wait_for(lambda: bool(h.gateway.runner.running()), "the first run")
        await h.send(second, "the second", topic="42")  # its own lane, the first's session

        await h.wait_for(lambda: len(h.replies()) == 2, "both replies")
        await h.settled()

        runs = sorted(h.store.recent_runs(), key=lambda run: run.started_at)
        assert [(run.chat_jid, run.topic, run.status) for run in runs] == [(first, "42", "ok"), (second, "42", "ok")]
        assert runs[0].ended_at is not None and runs[0].ended_at <= runs[1].started_at, "they ran at the same time"
        documents = inputs(h, "corp")
        assert [prompt_texts(d) for d in documents] == [["the first"], ["the second"]]
        # the second resumed the session the first began (the echo agent keeps the id it is given)
        assert "sessionId" not in documents[0] and documents[1]["sessionId"] == session_id(h, "corp", "42")
        assert runs[1].session_id == session_id(h, "corp", "42")
        # the second lane started no agent while the session was taken: the sweep offered it every 0.5 s for 1 s
        assert len(starts) == 2, starts


# ---------------------------------------------------------------------------------------------------- 5. idle expiry
async def _two_runs_with_a_pause(h: Harness, pause: float) -> tuple[str, list[dict[str, Any]]]:
    """Answer "one", wait ``pause`` seconds idle, answer "two"; the first session and the recorded inputs."""
    await h.send("web:corp", "one")
    await h.wait_for(lambda: h.replies("web:corp") == ["echo: one"], "the first reply")
    await h.settled()
    first = session_id(h, "corp")
    assert first is not None
    await asyncio.sleep(pause)  # let the session sit idle
    await h.send("web:corp", "two")
    await h.wait_for(lambda: h.replies("web:corp") == ["echo: one", "echo: two"], "the second reply")
    await h.settled()
    return first, inputs(h, "corp")


async def test_a_session_idle_past_the_groups_expiry_starts_fresh_and_the_agent_is_told(tmp_path: Path) -> None:
    group = process_group("corp", env=recorded(), session_idle_expiry=0.5)
    async with running_gateway(tmp_path / "data", [group]) as h:
        first, documents = await _two_runs_with_a_pause(h, 1.0)

        assert [prompt_texts(d) for d in documents] == [["one"], ["two"]]
        assert ["sessionId" in d for d in documents] == [False, False]
        assert re.search(r'<system [^>]*event="auto_reset"[^>]*>', documents[1]["prompt"])
        assert "<system " not in documents[0]["prompt"]
        fresh = session_id(h, "corp")
        assert fresh is not None and fresh != first
        assert h.store.system_messages_for("corp") == []  # the note was flushed into that run, not left queued


async def test_without_an_idle_expiry_the_session_is_reused_after_the_same_pause(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", env=recorded())]) as h:
        first, documents = await _two_runs_with_a_pause(h, 1.0)

        assert [prompt_texts(d) for d in documents] == [["one"], ["two"]]
        assert "sessionId" not in documents[0]
        assert documents[1]["sessionId"] == first
        assert "<system " not in documents[1]["prompt"]
        assert session_id(h, "corp") == first
