"""The OpenAI-compatible API, driven by the official ``openai`` package against a real ``gated run``.

One gated (a child process, HTTP on a free port) serves groups on the process runtime with the echo agent: ``corp``
answers at once, ``chatty`` three times at once, ``slow`` twice, 1 s apart, ``steady`` once after 0.8 s, ``stuck``
after 8 s (beyond ``openai.timeout``, 3 s here), ``broken`` fails every run (dead-lettered after its fast retries),
``other`` is a group the main key may not use. Every answer is checked against the store, the only place replies
exist: each one an outbound row of ``web:<folder>``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from kanmon.store import Group, Message, Store, upgrade
from kanmon.web.openai_api import conversation_topic
from kanmon.web.tokens import new_api_key
from tests.gated_process import Gated
from tests.gateway_harness import ECHO_COMMAND

TIMEOUT = 3.0
GROUPS = {
    "corp": {},
    "chatty": {"ECHO_REPEAT": "3"},
    "slow": {"ECHO_DELAY": "1", "ECHO_REPEAT": "2"},
    "steady": {"ECHO_DELAY": "0.8"},
    "stuck": {"ECHO_DELAY": "8"},
    "broken": {"ECHO_SILENT": "1", "ECHO_EXIT": "1"},
    "thinking": {"ECHO_STATUS": "thinking it over"},
    "metered": {"ECHO_USAGE": '{"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 100}'},
    "other": {},
}


@dataclass
class Served:
    url: str
    key: str
    key_id: str
    other_key: str
    data_dir: Path
    gated: Gated
    clients: list[openai.OpenAI] = field(default_factory=list)  # closed with the module's gated

    def client(self, key: str | None = None) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, timeout=30)
        self.clients.append(client)
        return client

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0, timeout=30)

    def rows(self, folder: str) -> list[Message]:
        store = Store.open(f"sqlite:///{self.data_dir / 'kanmon.db'}")
        try:
            return store.chat_messages(f"web:{folder}", 0, limit=10_000)
        finally:
            store.close()

    def wait_rows(self, folder: str, what: str, condition: object, timeout: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(folder)
            if condition(rows):  # type: ignore[operator]
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {rows}\n{self.gated.logged()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("openai")
    data = root / "data"
    data.mkdir()
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    upgrade(store.engine)
    for folder, env in GROUPS.items():
        store.add_group(
            Group(folder=folder, container_config={"runtime": "process", "command": ECHO_COMMAND, "env": env})
        )
    main, other = new_api_key(), new_api_key()
    store.add_api_key(
        main.key_id,
        main.key_hash,
        ["corp", "chatty", "slow", "steady", "stuck", "broken", "thinking", "metered"],
        name="tests",
    )
    store.add_api_key(other.key_id, other.key_hash, ["other"])
    store.close()
    env = {"KANMON_OPENAI_TIMEOUT": str(TIMEOUT), "KANMON_RETRY_BASE_DELAY": "0.1", "KANMON_POLL_INTERVAL": "0.2"}
    gated = Gated(data, root / "gated.log", args=["--http", "127.0.0.1:0"], env=env).start()
    try:
        gated.wait_logged("gated running")
        found = re.search(r"http=(http://127\.0\.0\.1:\d+)", gated.logged())
        assert found, gated.logged()
        served = Served(found.group(1), main.key, main.key_id, other.key, data, gated)
        yield served
        for client in served.clients:
            client.close()
    finally:
        assert gated.stop() == 0, gated.logged()


def replies_to(rows: list[Message], message_id: str) -> list[str]:
    return [row.content for row in rows if row.direction == "out" and row.reply_to_id == message_id]


def inbound(rows: list[Message], text: str) -> list[Message]:
    return [row for row in rows if row.direction == "in" and row.content == text]


# ------------------------------------------------------------------------------------------------ the sync client
def test_models_are_the_groups_of_the_key(served: Served) -> None:
    assert sorted(model.id for model in served.client().models.list()) == [
        "broken",
        "chatty",
        "corp",
        "metered",
        "slow",
        "steady",
        "stuck",
        "thinking",
    ]
    assert [model.id for model in served.client(served.other_key).models.list()] == ["other"]
    assert served.client().models.retrieve("corp").id == "corp"
    with pytest.raises(openai.NotFoundError):
        served.client().models.retrieve("other")


def test_a_completion_answers_the_newest_user_message_from_the_store(served: Served) -> None:
    completion = served.client().chat.completions.create(
        model="corp",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "an earlier turn"},
            {"role": "assistant", "content": "echo: an earlier turn"},
            {"role": "user", "content": [{"type": "text", "text": "sync hello"}]},
        ],
    )
    assert completion.choices[0].message.content == "echo: sync hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "corp"
    rows = served.rows("corp")
    (asked,) = inbound(rows, "sync hello")
    assert not inbound(rows, "an earlier turn")  # the agent keeps history in its session: only the newest is sent
    assert asked.topic == conversation_topic(served.key_id, None) and asked.sender == f"api:{served.key_id}"
    assert completion.id == f"chatcmpl-{asked.id}"
    assert replies_to(rows, asked.id) == ["echo: sync hello"]  # the answer is the stored reply


def test_every_reply_of_the_run_is_in_the_answer(served: Served) -> None:
    completion = served.client().chat.completions.create(model="chatty", messages=[{"role": "user", "content": "hi"}])
    (asked,) = inbound(served.rows("chatty"), "hi")
    assert replies_to(served.rows("chatty"), asked.id) == [f"echo ({n}/3): hi" for n in (1, 2, 3)]
    assert completion.choices[0].message.content == "echo (1/3): hi\n\necho (2/3): hi\n\necho (3/3): hi"


def test_a_completion_waits_for_the_run_to_end_not_for_its_first_stored_reply(served: Served) -> None:
    # `slow` stores its first reply a second before its second (a run's first reply is stored within 5 ms, while the
    # run goes on): an answer made when the first reply appeared would miss the second
    completion = served.client().chat.completions.create(
        model="slow", messages=[{"role": "user", "content": "all of it"}]
    )
    (asked,) = inbound(served.rows("slow"), "all of it")
    assert replies_to(served.rows("slow"), asked.id) == ["echo (1/2): all of it", "echo (2/2): all of it"]
    assert completion.choices[0].message.content == "echo (1/2): all of it\n\necho (2/2): all of it"


def test_a_conversation_named_by_user_or_header_is_its_own_topic(served: Served) -> None:
    client = served.client()
    client.chat.completions.create(model="corp", user="alice", messages=[{"role": "user", "content": "from alice"}])
    raw = client.chat.completions.with_raw_response.create(
        model="corp",
        user="ignored when the header names one",
        messages=[{"role": "user", "content": "from bob"}],
        extra_headers={"X-Kanmon-Conversation": "bob"},
    )
    assert raw.headers["X-Kanmon-Topic"] == conversation_topic(served.key_id, "bob")
    assert raw.parse().choices[0].message.content == "echo: from bob"
    rows = served.rows("corp")
    assert inbound(rows, "from alice")[0].topic == conversation_topic(served.key_id, "alice")
    assert inbound(rows, "from bob")[0].topic == conversation_topic(served.key_id, "bob")


def test_a_retry_with_the_same_idempotency_key_is_answered_once(served: Served) -> None:
    client = served.client()
    ask = {"model": "corp", "messages": [{"role": "user", "content": "only once"}]}
    first = client.chat.completions.create(**ask, extra_headers={"Idempotency-Key": "req-1"})  # type: ignore[call-overload]
    again = client.chat.completions.create(**ask, extra_headers={"Idempotency-Key": "req-1"})  # type: ignore[call-overload]
    assert first.id == again.id and again.choices[0].message.content == "echo: only once"
    rows = served.rows("corp")
    assert len(inbound(rows, "only once")) == 1 and len(replies_to(rows, inbound(rows, "only once")[0].id)) == 1


def test_the_usage_is_what_the_answering_run_reported(served: Served) -> None:
    """A newcomer's report: always 0, though the agent reported its tokens (prompt tokens include cache reads)."""
    answer = served.client().chat.completions.create(model="metered", messages=[{"role": "user", "content": "count"}])
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (110, 5, 115)
    unmetered = served.client().chat.completions.create(model="corp", messages=[{"role": "user", "content": "free"}])
    assert unmetered.usage is not None and unmetered.usage.total_tokens == 0


def test_status_lines_are_not_part_of_the_answer_whole_or_streamed(served: Served) -> None:
    """A newcomer's report: the answer read '⏳ thinking slowly\n\ngot …'. The web chat still shows the ⏳ row."""
    ask = {"model": "thinking", "messages": [{"role": "user", "content": "deep question"}]}
    whole = served.client().chat.completions.create(**ask)  # type: ignore[call-overload]
    assert whole.choices[0].message.content == "echo: deep question"
    with served.client().chat.completions.create(**ask, stream=True) as stream:  # type: ignore[call-overload]
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == "echo: deep question"
    (asked, _) = inbound(served.rows("thinking"), "deep question")
    assert replies_to(served.rows("thinking"), asked.id) == ["⏳ thinking it over", "echo: deep question"]


def test_an_idempotency_key_reused_for_another_request_is_422_and_stores_nothing(served: Served) -> None:
    """A newcomer's report: the second request silently got the first one's answer (IETF draft §2.7: 422)."""
    client = served.client()
    headers = {"Idempotency-Key": "req-2"}
    client.chat.completions.create(model="corp", messages=[{"role": "user", "content": "first"}], extra_headers=headers)
    with pytest.raises(openai.UnprocessableEntityError, match="Idempotency-Key was used for a different request"):
        client.chat.completions.create(
            model="corp", messages=[{"role": "user", "content": "second"}], extra_headers=headers
        )
    assert inbound(served.rows("corp"), "second") == []


# ------------------------------------------------------------------------------------------------ streaming
def test_a_stream_sends_each_reply_as_it_is_stored(served: Served) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, str | None, str | None]] = []
    with served.client().chat.completions.create(
        model="slow", stream=True, messages=[{"role": "user", "content": "streamed"}]
    ) as stream:
        for chunk in stream:
            delta = chunk.choices[0].delta
            arrivals.append((time.monotonic() - started, delta.role, delta.content))
            finish = chunk.choices[0].finish_reason
    assert arrivals[0][1] == "assistant" and arrivals[0][0] < 0.9  # the stream opens before the agent answers
    texts = [(at, content) for at, _, content in arrivals if content]
    assert [content for _, content in texts] == ["echo (1/2): streamed", "\n\necho (2/2): streamed"]
    assert texts[0][0] >= 0.9 and texts[1][0] - texts[0][0] >= 0.7  # each reply came when the agent gave it
    (asked,) = inbound(served.rows("slow"), "streamed")
    assert "".join(content for _, content in texts) == "\n\n".join(replies_to(served.rows("slow"), asked.id))
    assert finish == "stop"


async def test_the_async_client_streams_and_answers_conversations_in_parallel(served: Served) -> None:
    client = served.async_client()
    started = time.monotonic()

    async def ask(conversation: str) -> str:
        completion = await client.chat.completions.create(
            model="slow", user=conversation, messages=[{"role": "user", "content": f"parallel {conversation}"}]
        )
        return completion.choices[0].message.content or ""

    answers = await asyncio.gather(*(ask(f"c{n}") for n in range(3)))
    assert answers == [f"echo (1/2): parallel c{n}\n\necho (2/2): parallel c{n}" for n in range(3)]
    assert time.monotonic() - started < 5.0  # three topics, three lanes: not 3 x 2 s one after the other
    stream = await client.chat.completions.create(
        model="corp", stream=True, messages=[{"role": "user", "content": "async stream"}]
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert "".join(pieces) == "echo: async stream"
    await client.close()


async def test_requests_of_one_conversation_answered_by_one_run_each_get_its_answer(served: Served) -> None:
    """Two requests that arrive while the conversation's run works wait together and one run answers both: its
    replies answer the batch's last message, and before, the other request got an empty answer (an outside
    review). Each request's answer is now what the run that took its message said."""
    client = served.async_client()

    async def ask(text: str) -> str:
        completion = await client.chat.completions.create(
            model="steady", user="one conversation", messages=[{"role": "user", "content": text}]
        )
        return completion.choices[0].message.content or ""

    first = asyncio.create_task(ask("batched a"))
    await asyncio.to_thread(served.wait_rows, "steady", "the first message", lambda rows: inbound(rows, "batched a"))
    await asyncio.sleep(0.3)  # its run works (0.8 s before its reply)
    second, third = await asyncio.gather(ask("batched b"), ask("batched c"))
    assert await first == "echo: batched a"
    assert second and second == third  # one run, one answer, for both
    rows = served.rows("steady")
    [b], [c] = inbound(rows, "batched b"), inbound(rows, "batched c")
    runs = {row.run_id for row in rows if row.direction == "out" and row.reply_to_id in (b.id, c.id)}
    assert len(runs) == 1
    await client.close()


# ------------------------------------------------------------------------------------------------ failures
@pytest.mark.parametrize("key", ["not-a-key", "kmk_00000000_" + "x" * 43])
def test_a_wrong_key_is_401_in_openais_shape(served: Served, key: str) -> None:
    client = served.client(key)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="corp", messages=[{"role": "user", "content": "nope"}])
    assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert not inbound(served.rows("corp"), "nope")


def test_a_request_without_a_key_is_401_in_openais_shape(served: Served) -> None:
    body = {"model": "corp", "messages": [{"role": "user", "content": "nope"}]}
    for headers in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": f"Bearer {served.key}x"}):
        answer = httpx.post(f"{served.url}/v1/chat/completions", json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"
    assert not inbound(served.rows("corp"), "nope")


def test_a_removed_key_stops_working_at_once(served: Served) -> None:
    issued = new_api_key()
    store = Store.open(f"sqlite:///{served.data_dir / 'kanmon.db'}")
    store.add_api_key(issued.key_id, issued.key_hash, ["corp"])
    client = served.client(issued.key)
    assert [model.id for model in client.models.list()] == ["corp"]
    store.remove_api_key(issued.key_id)
    store.close()
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize("model", ["other", "nosuch", "../etc"])
def test_a_model_the_key_may_not_use_is_404_model_not_found(served: Served, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        served.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "lost"}])
    assert raised.value.code == "model_not_found"
    assert not inbound(served.rows("other"), "lost")


def test_a_request_without_a_user_message_is_400(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        served.client().chat.completions.create(model="corp", messages=[{"role": "system", "content": "x"}])
    assert "no user message" in str(raised.value)
    answer = httpx.post(
        f"{served.url}/v1/chat/completions", content=b"{", headers={"Authorization": f"Bearer {served.key}"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("body", [[1, 2], "text", 7], ids=["list", "string", "number"])
def test_a_body_that_is_not_an_object_says_so_without_an_empty_place(served: Served, body: object) -> None:
    key = {"Authorization": f"Bearer {served.key}"}
    answer = httpx.post(f"{served.url}/v1/chat/completions", json=body, headers=key)
    assert answer.status_code == 400
    # was "Invalid request: : …", then "Invalid request: the body: Input should be a valid dictionary or instance
    # of CompletionRequest" (pydantic's words, a newcomer's report)
    assert answer.json()["error"]["message"] == f"The body must be a JSON object, not {type(body).__name__}."


def test_an_agent_that_keeps_failing_is_502_after_its_retries(served: Served) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        served.client().chat.completions.create(model="broken", messages=[{"role": "user", "content": "doomed"}])
    assert raised.value.status_code == 502 and raised.value.code == "agent_failed"
    assert [row.status for row in inbound(served.rows("broken"), "doomed")] == ["dead"]


def test_a_slow_agent_is_504_and_its_run_still_finishes_into_the_store(served: Served) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as raised:
        served.client().chat.completions.create(model="stuck", messages=[{"role": "user", "content": "too slow"}])
    assert raised.value.status_code == 504 and raised.value.code == "timeout"
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 2
    rows = served.wait_rows("stuck", "the run to finish", lambda rows: inbound(rows, "too slow")[0].status == "done")
    (asked,) = inbound(rows, "too slow")
    assert replies_to(rows, asked.id) == ["echo: too slow"]


def test_a_stream_that_times_out_ends_with_an_error_event(served: Served) -> None:
    with pytest.raises(openai.APIError) as raised:
        stream = served.client().chat.completions.create(
            model="stuck", stream=True, user="timeout-stream", messages=[{"role": "user", "content": "slow stream"}]
        )
        for _ in stream:
            pass
    assert "did not finish" in str(raised.value)


def test_a_client_that_leaves_mid_stream_changes_nothing_for_the_run(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model="slow", stream=True, user="leaver", messages=[{"role": "user", "content": "left early"}]
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()  # the client goes away before the agent has answered
    rows = served.wait_rows("slow", "the run to finish", lambda rows: inbound(rows, "left early")[0].status == "done")
    (asked,) = inbound(rows, "left early")
    assert replies_to(rows, asked.id) == ["echo (1/2): left early", "echo (2/2): left early"]
    assert "Traceback" not in served.gated.logged(), served.gated.logged()[-8000:]
