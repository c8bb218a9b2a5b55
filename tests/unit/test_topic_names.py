"""A topic's name as the web chat stores it: one trimmed line of printable text, at most 80 characters (issue 18)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kanmon.web.webchat_topics import MAX_NAME_CHARS, TopicName


@given(st.text(max_size=2 * MAX_NAME_CHARS))
def test_a_name_is_stored_as_one_trimmed_printable_line_or_refused(raw: str) -> None:
    try:
        name = TopicName(topic="t-1", name=raw).name
    except ValidationError:
        return  # too long once trimmed, or not storable (NUL, lone surrogate)
    assert len(name) <= MAX_NAME_CHARS
    assert name == name.strip() and "  " not in name
    assert all(ch.isprintable() for ch in name)
    assert TopicName(topic="t-1", name=name).name == name  # stored as given when it is stored again


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("  Trip\tplans \n", "Trip plans"), ("", ""), ("   ", ""), ("a\u200bb", "a b"), ("日本 の 旅", "日本 の 旅")],
)
def test_white_space_and_invisible_characters_are_folded(raw: str, stored: str) -> None:
    assert TopicName(topic="", name=raw).name == stored


@pytest.mark.parametrize("raw", ["x" * (MAX_NAME_CHARS + 1), "a\x00b", "\ud800"])
def test_a_name_too_long_or_not_storable_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        TopicName(topic="t-1", name=raw)
