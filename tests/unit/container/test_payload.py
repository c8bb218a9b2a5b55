"""The agent input document and its XML prompt."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from kanmon.container.payload import AgentInput, PromptMessage, render_prompt, xml_escape

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def message(**overrides: object) -> PromptMessage:
    fields: dict[str, object] = {
        "sender": "Ann",
        "sender_id": "tg-1",
        "time": WHEN,
        "chat_id": "telegram:-100",
        "platform": "telegram",
        "text": "hi",
    }
    return PromptMessage(**{**fields, **overrides})  # type: ignore[arg-type]


def test_xml_escape_escapes_ampersand_angle_brackets_and_quotes() -> None:
    assert xml_escape('a & <b> "c"') == "a &amp; &lt;b&gt; &quot;c&quot;"


def test_a_message_renders_its_attributes_and_escaped_text() -> None:
    rendered = message(text="1 < 2 & </message>").render()
    assert rendered == (
        '<message sender="Ann" sender_id="tg-1" time="2026-01-02T03:04:05Z" chat_id="telegram:-100" '
        'platform="telegram">1 &lt; 2 &amp; &lt;/message&gt;</message>'
    )


def test_optional_attributes_appear_only_when_set_and_are_escaped() -> None:
    rendered = message(verb="reply", thread='t"1', reply_to="m9", sender='Bo "B"').render()
    assert 'verb="reply" thread="t&quot;1" reply_to="m9"' in rendered
    assert 'sender="Bo &quot;B&quot;"' in rendered
    assert "verb=" not in message(verb="message").render()


def test_message_time_is_rendered_in_utc_with_a_real_z() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=9)))
    assert 'time="2026-01-02T03:04:05Z"' in message(time=local).render()


def test_the_prompt_puts_system_messages_and_clock_before_the_messages() -> None:
    prompt = render_prompt([message(text="a"), message(text="b")], now=WHEN, system=["<system>new day</system>"])
    lines = prompt.split("\n")
    assert lines[0] == "<system>new day</system>"
    assert lines[1] == '<clock time="2026-01-02T03:04:05Z" tz="UTC"/>'
    assert lines[2].startswith("<messages><message ") and lines[2].endswith("</messages>")
    assert lines[2].index(">a<") < lines[2].index(">b<")


def test_the_input_document_uses_arizuko_field_names_and_omits_empty_session_and_secrets() -> None:
    document = json.loads(AgentInput(prompt="p", chat_jid="web:x", group_folder="support", run_id="r1").to_bytes())
    assert set(document) == {
        "prompt",
        "chatJid",
        "groupFolder",
        "topic",
        "assistantName",
        "channelName",
        "messageId",
        "sender",
        "runId",
    }


def test_the_input_document_carries_session_and_secrets_when_set_but_repr_hides_secrets() -> None:
    payload = AgentInput(prompt="p", chat_jid="c", group_folder="g", run_id="r", session_id="s", secrets={"K": "v4lue"})
    assert payload.to_dict()["sessionId"] == "s"
    assert payload.to_dict()["secrets"] == {"K": "v4lue"}
    assert "v4lue" not in repr(payload)
