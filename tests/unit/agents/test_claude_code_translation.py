"""Properties of the runner's translation of Claude Code stream-JSON into kanmon blocks (in process, hypothesis).

Whatever claude prints, every block the runner writes is one kanmon's parser accepts; the chat sees exactly the
main agent's texts, in order; and no secret value survives the redaction.
"""

from __future__ import annotations

import json
from typing import Any

from claude_runner import HEARTBEAT, REDACTED, Redactor, Translator, heartbeat_interval
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kanmon.container.events import Heartbeat, Output, Usage
from kanmon.container.protocol import InvalidBlock, OutputParser, ParserEvent, clean_result, encode_block

SESSION = "0f0e0d0c-0b0a-4908-8706-050403020100"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# a text the chat would show as is: no reasoning or status tags, no surrounding blanks
plain_texts = st.text(st.characters(codec="utf-8", exclude_characters="<>\r"), min_size=1, max_size=40).map(str.strip)


def parse_blocks(blocks: list[dict[str, Any]]) -> list[ParserEvent]:
    parser = OutputParser()
    events = [event for block in blocks for event in parser.feed(encode_block(block))] + parser.close()
    assert not [event for event in events if isinstance(event, InvalidBlock)]
    return events


def assistant(parts: list[dict[str, Any]], parent: str | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": parts}
    return {"type": "assistant", "message": message, "parent_tool_use_id": parent, "session_id": SESSION}


text_parts = plain_texts.map(lambda text: {"type": "text", "text": text})
tool_parts = st.sampled_from(["Bash", "Read", "Grep"]).map(lambda name: {"type": "tool_use", "name": name, "input": {}})
thinking_parts = plain_texts.map(lambda text: {"type": "thinking", "thinking": text})
events = st.one_of(
    st.lists(st.one_of(text_parts, tool_parts, thinking_parts), max_size=3).map(assistant),
    st.lists(text_parts, min_size=1, max_size=2).map(lambda parts: assistant(parts, parent="toolu_sub")),
    st.just({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}}),
    st.just({"type": "system", "subtype": "init", "session_id": SESSION}),
)
results = st.one_of(
    st.none(),
    plain_texts.map(lambda text: {"type": "result", "subtype": "success", "is_error": False, "result": text}),
    st.sampled_from(["error_max_turns", "error_during_execution"]).map(
        lambda subtype: {"type": "result", "subtype": subtype, "is_error": True, "session_id": SESSION}
    ),
)


def expected_texts(stream: list[dict[str, Any]], result: dict[str, Any] | None) -> list[str]:
    """The chat's texts by the runner's documented rules: the main agent's texts, else a successful result's."""
    texts = [
        part["text"]
        for event in stream
        if event["type"] == "assistant" and not event["parent_tool_use_id"]
        for part in event["message"]["content"]
        if part["type"] == "text" and part["text"].strip()
    ]
    if not texts and result is not None and not result["is_error"] and result["result"].strip():
        return [result["result"]]
    return texts


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(events, max_size=8), result=results, code=st.sampled_from([0, 0, 1]))
def test_the_chat_sees_the_main_agents_texts_and_the_run_ends_as_spec_9_says(
    stream: list[dict[str, Any]], result: dict[str, Any] | None, code: int
) -> None:
    translator = Translator(Redactor([]))
    blocks = [block for event in stream for block in translator.feed(event)]
    if result is not None:
        blocks += translator.feed(result)
    blocks.append(translator.finish(code, []))
    parsed = parse_blocks(blocks)
    outputs = [event for event in parsed if isinstance(event, Output)]
    texts = [output.text for output in outputs if output.deliverable]
    assert texts == [clean_result(text) for text in expected_texts(stream, result)]
    failed = code != 0 or result is None or result["is_error"]
    last = outputs[-1]
    assert last.status == ("error" if failed else "ok")
    assert not last.deliverable, "the last block only ends the run"
    if not failed or texts:
        assert last.new_session_id == (SESSION if any("session_id" in e for e in [*stream, result or {}]) else None)
    else:
        assert last.new_session_id is None, "an error without output starts the retry afresh"
    assert all(isinstance(event, Output | Heartbeat) for event in parsed)


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(json_values, max_size=6))
def test_anything_claude_prints_gives_blocks_kanmon_accepts(stream: list[Any]) -> None:
    translator = Translator(Redactor([]), tool_status=True)
    for event in stream:
        blocks = translator.feed(event)
        assert blocks, "every line is at least a sign of life"
        parse_blocks(blocks)
    parse_blocks([translator.finish(0, ["some", "stderr"])])


@settings(max_examples=300, deadline=None)
@given(secret=st.text(min_size=4, max_size=30), before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_secret_never_survives_redaction(secret: str, before: str, after: str) -> None:
    assume(secret not in REDACTED)
    redact = Redactor([secret])
    for text in (before + secret + after, before + json.dumps(secret) + after, secret * 2):
        assert secret not in redact(text)


def test_a_value_shorter_than_four_characters_is_not_a_secret_to_blank() -> None:
    assert Redactor(["abc"])("abc abcd") == "abc abcd"
    assert Redactor(["abcd"])("abc abcd") == f"abc {REDACTED}"


def test_a_sub_agents_text_is_a_heartbeat_not_a_reply() -> None:
    translator = Translator(Redactor([]))
    assert translator.feed(assistant([{"type": "text", "text": "notes for the parent"}], parent="toolu_1")) == [
        HEARTBEAT
    ]
    assert translator.texts == 0


def test_timed_heartbeats_are_off_unless_the_group_sets_a_sane_interval() -> None:
    # off by default: the idle timer must be able to stop a claude that hangs (e.g. retrying an unreachable API)
    assert heartbeat_interval({}) is None
    assert heartbeat_interval({"KANMON_CLAUDE_HEARTBEAT": "0.25"}) == 0.25
    for bad in ("", "0", "-1", "abc", "nan", "inf"):
        assert heartbeat_interval({"KANMON_CLAUDE_HEARTBEAT": bad}) is None, bad


def test_a_text_that_holds_the_markers_arrives_whole() -> None:
    text = "see:\n---ARIZUKO_OUTPUT_END---\n---ARIZUKO_OUTPUT_START---\n{}\u2028done"
    translator = Translator(Redactor([]))
    blocks = translator.feed(assistant([{"type": "text", "text": text}]))
    assert [event.result for event in parse_blocks(blocks) if isinstance(event, Output)] == [text]


def test_a_failed_run_still_reports_its_usage_and_odd_numbers_are_left_out() -> None:
    translator = Translator(Redactor([]))
    translator.feed({"type": "result", "subtype": "error_max_turns", "is_error": True, "total_cost_usd": 0.5,
                     "usage": {"input_tokens": 7, "output_tokens": -1, "cache_read_input_tokens": "3",
                               "cache_creation_input_tokens": True}})  # fmt: skip
    [event] = parse_blocks([translator.finish(1, [])])
    assert isinstance(event, Output) and event.status == "error"
    assert event.usage == Usage(input_tokens=7, cost_usd=0.5)
    silent = Translator(Redactor([]))
    silent.feed({"type": "result", "subtype": "success", "result": "hi", "usage": "lots"})
    assert "usage" not in silent.finish(0, [])
