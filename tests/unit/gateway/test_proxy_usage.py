"""Token usage read from answers passing the credential proxy (issue 19): however the answer is cut into chunks."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from kanmon.gateway.proxy_usage import MAX_HELD, TokenCounts, UsageReader

# an Anthropic streamed answer, as its Messages API sends it (message_delta's counts are cumulative)
ANTHROPIC_EVENTS = b"".join(
    f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
    for name, data in [
        ("message_start", {"type": "message_start", "message": {"id": "m", "usage": {
            "input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 2}}}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 15}}),
        ("message_stop", {"type": "message_stop"}),
    ]
)  # fmt: skip
OPENAI_JSON = json.dumps({"id": "c", "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})


def read(data: bytes, cuts: list[int], *, event_stream: bool) -> TokenCounts:
    reader = UsageReader(event_stream=event_stream)
    points = sorted({min(cut, len(data)) for cut in cuts})
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        reader.feed(data[start:end])
    return reader.finish()


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ANTHROPIC_EVENTS)), max_size=10))
def test_a_streamed_answer_counts_the_same_however_it_is_cut(cuts: list[int]) -> None:
    assert read(ANTHROPIC_EVENTS, cuts, event_stream=True) == TokenCounts(
        input=25, output=15, cache_read=7, cache_write=2
    )


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(OPENAI_JSON)), max_size=10))
def test_a_json_answer_counts_its_usage(cuts: list[int]) -> None:
    assert read(OPENAI_JSON.encode(), cuts, event_stream=False) == TokenCounts(input=9, output=4)


@given(data=st.binary(max_size=500), event_stream=st.booleans())
def test_anything_else_counts_nothing_and_never_raises(data: bytes, event_stream: bool) -> None:
    counts = read(data, [7, 50], event_stream=event_stream)
    assert counts.input >= 0 and counts.output >= 0  # made-up bytes may hold a usage object, never a negative one


def test_an_oversized_line_is_skipped_and_the_lines_after_it_are_read() -> None:
    huge = b"data: " + b"x" * (MAX_HELD + 10) + b"\n"
    after = b'data: {"usage": {"input_tokens": 4, "output_tokens": 2}}\n\n'
    assert read(huge + after, [100, MAX_HELD // 2, MAX_HELD + 5], event_stream=True) == TokenCounts(input=4, output=2)
    assert read(b'{"usage": {"input_tokens": 1}, "pad": "' + b"x" * MAX_HELD + b'"}', [10], event_stream=False) == (
        TokenCounts()
    )
