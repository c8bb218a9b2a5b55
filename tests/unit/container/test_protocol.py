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
    REASONING_TAGS,
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
        pytest.param("plan: the user wants X</think>Answer", "Answer", id="orphan-close-hides-what-came-before"),
        pytest.param("a</think>b", "b", id="stray-closing-tag"),
        pytest.param("Hi <think>a</internal>b</think>c", "Hi c", id="only-its-own-tag-closes-a-section"),
        pytest.param(
            "before\n<internal>line 1\nline 2</internal>\nafter", "before\n\nafter", id="internal-spans-lines"
        ),
        pytest.param("<THINK>x</Think>y", "y", id="case-insensitive"),
        pytest.param("<thinking>x</thinking>y", "y", id="thinking"),
        pytest.param("<Reasoning>x</REASONING>y", "y", id="reasoning"),
        pytest.param("<reflection>x</reflection>y", "y", id="reflection"),
        pytest.param('<think type="plan" depth=2>x</think >y', "y", id="attributes-and-spaces"),
        pytest.param("<think note='a > b'>x</think>y", "y", id="quoted-angle-bracket-in-an-attribute"),
        pytest.param("a<think/>b<think />c", "abc", id="self-closing-is-empty"),
        pytest.param("<thinking>a<reasoning>b</thinking>c</reasoning>d", "d", id="different-tags-nest"),
        pytest.param("ok <reasoning type='x'", "ok", id="unfinished-opening-tag-hides-the-rest"),
        pytest.param("<thinker> and <thinkpad>", "<thinker> and <thinkpad>", id="longer-names-are-not-tags"),
        pytest.param("<b>bold</b> 1 < 2 > 0", "<b>bold</b> 1 < 2 > 0", id="other-markup-is-kept"),
        pytest.param("<thi<think>x</think>nk>secret</think>shown", "shown", id="a-tag-joined-from-pieces-is-hidden"),
        pytest.param(
            "Working <status>searching the web</status> now", "Working\n⏳ searching the web\nnow", id="status"
        ),
        pytest.param("<status>step 1</status><status>step 2</status>", "⏳ step 1\n⏳ step 2", id="two-statuses"),
        pytest.param("<think><status>hidden</status></think>shown", "shown", id="status-inside-think-is-hidden"),
        pytest.param("<status>gone</status> plan</reasoning>shown", "shown", id="status-before-an-orphan-close"),
        pytest.param("<status> </status>text", "text", id="empty-status"),
        pytest.param("a\n\n\n\n\nb", "a\n\nb", id="collapses-blank-runs"),
        pytest.param("  padded  ", "padded", id="strips"),
    ],
)
def test_clean_result_shows_only_what_the_chat_should_see(raw: str, clean: str) -> None:
    assert clean_result(raw) == clean


def test_the_reasoning_tags_are_configurable() -> None:
    assert clean_result("<scratch>x</scratch><think>y</think>", reasoning_tags=["Scratch"]) == "<think>y</think>"
    assert clean_result("<think>kept</think>", reasoning_tags=()) == "<think>kept</think>"


@pytest.mark.parametrize("name", ["", "two words", "<think>", "a|b", "9lives"])
def test_a_reasoning_tag_that_is_not_a_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="reasoning tag"):
        OutputParser(reasoning_tags=["think", name])
    with pytest.raises(ValueError, match="reasoning tag"):  # every time: the names' check is cached, errors never
        clean_result("text", reasoning_tags=["think", name])


def test_the_parser_cleans_results_with_its_reasoning_tags() -> None:
    parser = OutputParser(reasoning_tags=("scratch",))
    [event] = parser.feed(encode_block({"status": "ok", "result": "<scratch>plan</scratch>answer"}))
    assert isinstance(event, Output)
    assert (event.result, event.text) == ("<scratch>plan</scratch>answer", "answer")


def test_an_output_whose_result_is_only_thoughts_is_not_deliverable() -> None:
    [event] = parse(encode_block({"status": "ok", "result": "<think>nothing to say</think>"}))
    assert isinstance(event, Output)
    assert event.text == ""
    assert not event.deliverable


@given(st.text(max_size=80), st.sampled_from(REASONING_TAGS))
def test_clean_result_never_leaks_text_after_an_unclosed_hidden_tag(text: str, tag: str) -> None:
    rest = re.sub(rf"(?i)</{tag}\s*>", "", text)
    assert "SECRET" not in clean_result(f"<{tag}>SECRET{rest}")


# ------------------------------------------------------------------------------------- reasoning never reaches a chat
MARK = "🔒SECRET"  # no visible piece can spell it: the lock is not in their alphabet
_VISIBLE = st.text(alphabet=st.characters(blacklist_characters="<🔒", blacklist_categories=["Cs"]), max_size=12)


def _any_case(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True))
    )


_names = st.sampled_from(REASONING_TAGS).flatmap(_any_case)
_attributes = st.sampled_from(["", " ", ' type="plan"', " a='x > y'", " depth=2", f' note="{MARK}"', "\n"])
_secret = st.builds(lambda a, b: a + MARK + b, _VISIBLE, _VISIBLE)
_secret_status = _secret.map(lambda text: f"<status>{text}</status>")


def _section(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A closed reasoning section holding the marker, perhaps nested sections, perhaps a status line."""
    body = st.lists(st.one_of(_secret, _secret_status, inner), min_size=1, max_size=3).map("".join)
    return st.builds(
        lambda name, attrs, text, space: f"<{name}{attrs}>{MARK}{text}</{name}{space}>",
        _names,
        _attributes,
        body,
        st.sampled_from(["", " "]),
    )


_sections = st.recursive(_section(_secret), _section, max_leaves=6)
_orphan_close = st.builds(lambda text, name: f"{text}</{name}>", _secret, _names)  # everything before is reasoning
_unclosed_open = st.builds(lambda name, attrs, text: f"<{name}{attrs}>{text}", _names, _attributes, _secret)
_self_closing = st.builds(lambda name: f"<{name}/>", _names)
_pieces = st.lists(st.one_of(_VISIBLE, _sections, _orphan_close, _unclosed_open, _self_closing), max_size=8)


@settings(max_examples=500)
@given(pieces=_pieces)
def test_no_reasoning_tag_or_its_content_ever_reaches_a_chat(pieces: list[str]) -> None:
    shown = clean_result("".join(pieces)).lower()
    assert MARK.lower() not in shown
    for name in REASONING_TAGS:
        assert f"<{name}" not in shown and f"</{name}" not in shown


_plain = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60).filter(
    lambda text: (
        not any(f"<{name}" in text.lower() or f"</{name}" in text.lower() for name in (*REASONING_TAGS, "status"))
    )
)


@given(text=_plain)
def test_visible_text_without_reasoning_tags_is_kept(text: str) -> None:
    assert clean_result(text).split() == text.split()


def test_a_block_with_bytes_that_are_not_utf8_is_read_with_replacement_characters() -> None:
    """As Docker's json-file log replays it (a re-attached run's output is read from there): before, the live parse
    skipped such a block and the replay numbered it, so every later output's index moved by one and a reply stored
    live was delivered again after the restart (an outside review)."""
    raw = block_bytes(b'{"status": "ok", "result": "bad \xff byte"}') + encode_block(
        {"status": "ok", "result": "hello"}
    )
    replayed = raw.decode("utf-8", errors="replace").encode()
    for data in (raw, replayed):
        events = parse(data)
        assert [(e.index, e.result) for e in events if isinstance(e, Output)] == [(0, "bad \ufffd byte"), (1, "hello")]


def block_bytes(body: bytes) -> bytes:
    return START_MARKER + b"\n" + body + b"\n" + END_MARKER + b"\n"


def numbered(events: list[ParserEvent]) -> list[tuple[str, int | None]]:
    return [(type(e).__name__, e.index if isinstance(e, Output) else None) for e in events]


@given(st.lists(st.binary(max_size=12), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_outputs_are_numbered_the_same_live_and_replayed_from_a_log_that_replaced_invalid_bytes(
    results: list[bytes],
) -> None:
    raw = b"".join(block_bytes(b'{"status": "ok", "result": "' + result + b'"}') for result in results)
    assert numbered(parse(raw)) == numbered(parse(raw.decode("utf-8", errors="replace").encode()))


class ScanCounting(bytearray):
    """The parser's line buffer, counting the bytes its searches for a newline look at."""

    scanned = 0

    def find(self, sub: bytes, start: int = 0, *args: int) -> int:  # type: ignore[override]
        ScanCounting.scanned += len(self) - start
        return super().find(sub, start, *args)


def test_a_long_line_fed_in_small_pieces_is_searched_once_not_once_per_piece() -> None:
    """An agent printing tokens without newlines sends a line in pieces; searching the whole line again for each
    piece made parsing quadratic, on the event loop (an outside review: a 10 MiB line in 64-byte pieces took 10 s)."""
    parser = OutputParser()
    parser._partial = ScanCounting()
    ScanCounting.scanned = 0
    line = b"x" * 200_000
    for start in range(0, len(line), 64):
        parser.feed(line[start : start + 64])
    parser.feed(b"\n")
    assert ScanCounting.scanned <= 4 * len(line)  # a few passes over it, not one per piece (3,125 of them)


class LineByLine(OutputParser):
    """The parser handling every line on its own, as it once did: the oracle for the lines it now takes in bulk."""

    def _lines(self, data: bytes) -> list[ParserEvent]:
        self._partial += data
        events: list[ParserEvent] = []
        start = 0
        while (end := self._partial.find(b"\n", start)) != -1:
            event = self._line(bytes(self._partial[start : end + 1]))
            if event is not None:
                events.append(event)
            start = end + 1
        del self._partial[:start]
        return events


PIECES = [START_MARKER, END_MARKER, b"  " + START_MARKER + b" ", b"\n", b"\r\n", b'{"status": "ok", "result": "a"}',
          b'{"heartbeat": true}', b"x", b"\xff", b"text " + START_MARKER, END_MARKER + b"!"]  # fmt: skip


@given(st.lists(st.sampled_from(PIECES), max_size=40), st.lists(st.integers(1, 40), max_size=20))
@settings(max_examples=500, deadline=None)
def test_lines_taken_in_bulk_give_exactly_what_lines_taken_one_by_one_give(parts: list[bytes], cuts: list[int]) -> None:
    """Blank and stray lines (10 MiB of blank lines once cost 12 s of the event loop) are now handed to the log or
    the block in one piece up to the next marker's line: the events and the log must be the same as before."""
    data = b"".join(parts)

    def run(parser: OutputParser) -> tuple[list[ParserEvent], str]:
        events: list[ParserEvent] = []
        position = 0
        for size in cuts:
            events += parser.feed(data[position : position + size])
            position += size
        events += parser.feed(data[position:])
        return events + parser.close(), parser.stray.text()

    assert run(OutputParser()) == run(LineByLine())
