"""Long replies are cut where a reader does not notice: never inside a code block or a character, never over the limit.

arizuko's adapters cut at fixed byte counts (a code block opened in one message and closed in the next rendered as
garbage in both) or refused long replies outright; see research/arizuko.md §8.4.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kanmon.adapters.matrix.split import json_size, split_message

FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*$", re.MULTILINE)


def _visible(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _fences(chunk: str) -> list[str]:
    return FENCE_LINE.findall(chunk)


def test_short_text_is_one_message_and_blank_text_none() -> None:
    assert split_message("hello", 100) == ["hello"]
    assert split_message(" \n\n ", 100) == []


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paragraphs = [f"paragraph {i} " + "word " * 10 for i in range(6)]
    chunks = split_message("\n\n".join(paragraphs), 200)
    assert len(chunks) > 1
    for chunk in chunks:
        assert json_size(chunk) <= 200
        for part in chunk.split("\n\n"):
            assert part.strip() in {p.strip() for p in paragraphs}  # no paragraph was cut


def test_a_code_block_that_fits_moves_whole_to_the_next_message() -> None:
    code = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(8)) + "```"
    text = "intro " * 20 + "\n\n" + code + "\n\nthe end"
    chunks = split_message(text, 200)
    assert any(code in chunk for chunk in chunks)  # the block is in one message, untouched
    for chunk in chunks:
        assert len(_fences(chunk)) % 2 == 0


def test_a_long_code_block_is_closed_and_reopened_with_its_info_string() -> None:
    body = "".join(f"line_{i} = compute({i})\n" for i in range(60))
    text = f"see:\n\n~~~~rust\n{body}~~~~\n\ndone"
    chunks = split_message(text, 300)
    code_chunks = [c for c in chunks if "line_" in c]
    assert len(code_chunks) > 2
    for chunk in code_chunks:
        code = chunk.partition("\n\ndone")[0]  # the paragraph after the block may share its last message
        lines = code.splitlines()
        assert lines[0] == "~~~~rust" and lines[-1] == "~~~~", chunk
        assert all(line.startswith("line_") for line in lines[1:-1])  # cut between lines, never inside one
    assert _visible("".join(chunks).replace("~~~~rust", "").replace("~~~~", "")) == _visible(
        text.replace("~~~~rust", "").replace("~~~~", "")
    )


def test_an_unclosed_block_at_the_end_stays_open_in_its_last_piece_only() -> None:
    text = "```\n" + "".join(f"row {i}\n" for i in range(50))
    chunks = split_message(text, 150)
    assert all(c.startswith("```\n") for c in chunks)
    assert all(c.endswith("\n```") for c in chunks[:-1])
    assert not chunks[-1].endswith("```")


def test_characters_and_clusters_are_never_cut() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"  # one picture, seven code points
    flag = "🇯🇵"
    accented = "e\u0301"  # e + combining acute
    text = (family + flag + accented + "😀") * 40
    chunks = split_message(text, 64)
    assert "".join(chunks) == text
    for chunk in chunks:
        assert json_size(chunk) <= 64
        chunk.encode("utf-16")  # a surrogate pair halved would not encode
        assert not chunk.startswith(("\u200d", "\u0301", "\U0001f1f5"))
        assert family in chunk or flag in chunk or accented in chunk


def test_escaping_counts_against_the_limit() -> None:
    text = '"\\' * 200 + "\x01" * 50
    chunks = split_message(text, 100)
    assert "".join(chunks) == text
    assert all(json_size(chunk) <= 100 for chunk in chunks)


def test_a_limit_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 64"):
        split_message("x", 10)


markdownish = st.lists(
    st.one_of(
        # fence characters only come in whole fence lines, so "is a fence line" means the same before and after
        st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="`~"), max_size=120),
        st.sampled_from(["\n", "\n\n", "\n```py\n", "\n```\n", "\n~~~\n", "    ", "👍🏽", "e\u0301", "\r\n", "\u2028"]),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=markdownish, limit=st.integers(min_value=64, max_value=400))
def test_every_message_fits_and_nothing_is_lost(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(json_size(chunk) <= limit for chunk in chunks)
    assert all(chunk.strip() for chunk in chunks)
    # what is visible survives in order; only fence lines may be added where a block was cut (a block whose fence
    # line is itself too long for a message is cut as plain text, and then nothing is added at all)
    joined = "\n".join(chunks)
    assert _visible(FENCE_LINE.sub("", joined)) == _visible(FENCE_LINE.sub("", text)) or _visible(joined) == _visible(
        text
    )
