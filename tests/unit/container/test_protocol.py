"""The output protocol parser and result cleaning (SPEC §9), sans I/O."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kanmon.container.events import Heartbeat, Output
from kanmon.container.protocol import (
    END_MARKER,
    START_MARKER,
    CappedTail,
    InvalidBlock,
    OutputLimitExceeded,
    OutputParser,
    ParserEvent,
    clean_result,
    encode_block,
)


def parse(data: bytes, *, chunks: list[int] | None = None, limit: int | None = None) -> list[ParserEvent]:
    """All events of ``data`` fed in pieces cut at ``chunks`` (sizes), then closed."""
    parser = OutputParser() if limit is None else OutputParser(output_limit=limit)
    events: list[ParserEvent] = []
    position = 0
    for size in chunks or []:
        events += parser.feed(data[position : position + size])
        position += size
    events += parser.feed(data[position:])
    return events + parser.close()


def block(body: str) -> bytes:
    return START_MARKER + b"\n" + body.encode() + b"\n" + END_MARKER + b"\n"


def test_parser_returns_an_output_for_a_block() -> None:
    events = parse(encode_block({"status": "ok", "result": "hello", "newSessionId": "s1", "error": ""}))
    assert events == [Output(index=0, status="ok", result="hello", text="hello", new_session_id="s1", error=None)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [pytest.param("ok", "ok", id="ok"), pytest.param("success", "ok", id="success"), pytest.param("error", "error")],
)
def test_parser_accepts_ok_success_and_error_statuses(status: str, expected: str) -> None:
    [event] = parse(encode_block({"status": status, "result": "x"}))
    assert isinstance(event, Output)
    assert event.status == expected


def test_parser_numbers_outputs_from_zero_and_does_not_count_heartbeats() -> None:
    data = (
        encode_block({"heartbeat": True})
        + encode_block({"status": "ok", "result": "a"})
        + encode_block({"heartbeat": True})
        + encode_block({"status": "error", "result": None, "error": "boom"})
    )
    events = parse(data)
    assert [type(e) for e in events] == [Heartbeat, Output, Heartbeat, Output]
    outputs = [e for e in events if isinstance(e, Output)]
    assert [o.index for o in outputs] == [0, 1]
    assert outputs[1].error == "boom"
    assert outputs[1].result is None
    assert not outputs[1].deliverable


def test_parser_handles_crlf_line_endings() -> None:
    data = encode_block({"status": "ok", "result": "crlf"}).replace(b"\n", b"\r\n")
    [event] = parse(data)
    assert isinstance(event, Output)
    assert event.result == "crlf"


def test_parser_discards_text_outside_blocks_but_keeps_it_for_the_log() -> None:
    parser = OutputParser()
    events = parser.feed(b"starting up\n" + encode_block({"status": "ok", "result": "r"}) + b"done\n")
    events += parser.close()
    assert [type(e) for e in events] == [Output]
    assert parser.stray.text() == "starting up\ndone\n"


def test_parser_skips_a_block_with_invalid_json_and_goes_on() -> None:
    events = parse(block("{not json") + encode_block({"status": "ok", "result": "after"}))
    assert isinstance(events[0], InvalidBlock)
    assert "not JSON" in events[0].reason
    assert isinstance(events[1], Output)
    assert events[1].index == 0  # the invalid block was not numbered


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param('{"status": "maybe", "result": "x"}', id="unknown-status"),
        pytest.param('{"result": "x"}', id="no-status"),
        pytest.param('{"status": "ok", "result": 42}', id="result-not-a-string"),
        pytest.param('{"status": "ok", "newSessionId": ["x"]}', id="session-not-a-string"),
        pytest.param('{"heartbeat": "yes"}', id="heartbeat-not-true"),
        pytest.param('"\\ud800 \xff"', id="not-an-object-string"),
    ],
)
def test_parser_reports_malformed_blocks_as_invalid(body: str) -> None:
    [event] = parse(block(body))
    assert isinstance(event, InvalidBlock)


def test_parser_reports_a_block_that_is_not_utf8_as_invalid() -> None:
    [event] = parse(START_MARKER + b"\n\xff\xfe\n" + END_MARKER + b"\n")
    assert isinstance(event, InvalidBlock)


def test_parser_ignores_a_block_never_closed() -> None:
    events = parse(
        encode_block({"status": "ok", "result": "a"}) + START_MARKER + b'\n{"status": "ok", "result": "b"}\n'
    )
    assert [type(e) for e in events] == [Output, InvalidBlock]
    assert isinstance(events[1], InvalidBlock)
    assert events[1].reason == "block never closed"


def test_parser_restarts_a_block_when_a_second_start_marker_comes_first() -> None:
    events = parse(START_MARKER + b"\ngarbage\n" + encode_block({"status": "ok", "result": "b"}))
    assert [e.result for e in events if isinstance(e, Output)] == ["b"]


def test_parser_reads_a_last_line_without_newline_at_end_of_stream() -> None:
    data = encode_block({"status": "ok", "result": "tail"}).rstrip(b"\n")
    assert [type(e) for e in parse(data)] == [Output]


def test_parser_accepts_a_multiline_json_body() -> None:
    body = json.dumps({"status": "ok", "result": "multi"}, indent=2)
    [event] = parse(block(body))
    assert isinstance(event, Output)
    assert event.result == "multi"


def test_parser_requires_markers_on_their_own_line() -> None:
    data = b"say " + START_MARKER + b"\n" + b'{"status":"ok","result":"x"}\n' + END_MARKER + b"\n"
    assert parse(data) == []


def test_parser_stops_at_the_output_cap_and_reports_it_once() -> None:
    first = encode_block({"status": "ok", "result": "early"})
    parser = OutputParser(output_limit=len(first) + 10)
    events = parser.feed(first)
    events += parser.feed(b"x" * 100)
    events += parser.feed(encode_block({"status": "ok", "result": "late"}))
    events += parser.close()
    assert [type(e) for e in events] == [Output, OutputLimitExceeded]
    assert parser.exceeded


def test_parser_counts_every_stdout_byte_toward_the_cap() -> None:
    events = parse(b"noise\n" * 100, limit=500)
    assert events == [OutputLimitExceeded(500)]


def test_capped_tail_keeps_the_last_bytes_and_says_how_many_it_dropped() -> None:
    tail = CappedTail(limit=4)
    tail.append(b"abcdef")
    tail.append(b"gh")
    assert tail.text() == "[... 4 bytes dropped ...]\nefgh"


# ---------------------------------------------------------------------------------------------------- property tests
_results = st.one_of(st.none(), st.text(max_size=40))
_blocks = st.one_of(
    st.builds(
        lambda r, s: encode_block({"status": s, "result": r}), _results, st.sampled_from(["ok", "success", "error"])
    ),
    st.just(encode_block({"heartbeat": True})),
    st.just(block("{broken")),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30).map(lambda t: t.encode() + b"\n"),
)
_streams = st.lists(_blocks, max_size=8).map(b"".join)


@settings(max_examples=300)
@given(data=_streams, cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=40), crlf=st.booleans())
def test_any_chunking_of_a_stream_yields_the_same_events(data: bytes, cuts: list[int], crlf: bool) -> None:
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    assert parse(data, chunks=cuts) == parse(data)


@settings(max_examples=200)
@given(data=_streams, size=st.integers(min_value=1, max_value=7), limit=st.integers(min_value=1, max_value=400))
def test_chunking_does_not_change_where_the_output_cap_cuts(data: bytes, size: int, limit: int) -> None:
    byte_by_byte = [size] * (len(data) // size)
    assert parse(data, chunks=byte_by_byte, limit=limit) == parse(data, limit=limit)


@given(results=st.lists(st.text(max_size=30), max_size=6))
def test_outputs_are_numbered_in_order_whatever_they_hold(results: list[str]) -> None:
    data = b"".join(encode_block({"status": "ok", "result": r}) for r in results)
    outputs = [e for e in parse(data) if isinstance(e, Output)]
    assert [o.result for o in outputs] == results
    assert [o.index for o in outputs] == list(range(len(results)))


# ---------------------------------------------------------------------------------------------------- clean_result
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        pytest.param("hello", "hello", id="plain"),
        pytest.param("<think>hmm</think>Answer", "Answer", id="think"),
        pytest.param("a<think>x<think>y</think>z</think>b", "ab", id="nested-think"),
        pytest.param("visible<think>never closed… secret", "visible", id="unclosed-think-hides-the-rest"),
        pytest.param("<think>only thoughts</think>", "", id="only-thoughts"),
        pytest.param("a</think>b", "ab", id="stray-closing-tag"),
        pytest.param("<think>a</internal>b</think>c", "c", id="only-its-own-tag-closes-a-section"),
        pytest.param(
            "before\n<internal>line 1\nline 2</internal>\nafter", "before\n\nafter", id="internal-spans-lines"
        ),
        pytest.param("<THINK>x</Think>y", "y", id="case-insensitive"),
        pytest.param(
            "Working <status>searching the web</status> now", "Working\n⏳ searching the web\nnow", id="status"
        ),
        pytest.param("<status>step 1</status><status>step 2</status>", "⏳ step 1\n⏳ step 2", id="two-statuses"),
        pytest.param("<think><status>hidden</status></think>shown", "shown", id="status-inside-think-is-hidden"),
        pytest.param("<status> </status>text", "text", id="empty-status"),
        pytest.param("a\n\n\n\n\nb", "a\n\nb", id="collapses-blank-runs"),
        pytest.param("  padded  ", "padded", id="strips"),
    ],
)
def test_clean_result_shows_only_what_the_chat_should_see(raw: str, clean: str) -> None:
    assert clean_result(raw) == clean


def test_an_output_whose_result_is_only_thoughts_is_not_deliverable() -> None:
    [event] = parse(encode_block({"status": "ok", "result": "<think>nothing to say</think>"}))
    assert isinstance(event, Output)
    assert event.text == ""
    assert not event.deliverable


@given(st.text(max_size=80), st.sampled_from(["think", "internal"]))
def test_clean_result_never_leaks_text_after_an_unclosed_hidden_tag(text: str, tag: str) -> None:
    rest = re.sub(rf"(?i)</{tag}\s*>", "", text)
    assert "SECRET" not in clean_result(f"<{tag}>SECRET{rest}")
