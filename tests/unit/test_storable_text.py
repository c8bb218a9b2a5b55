"""Every text the store writes is made storable first (hardening item 4): a property of :func:`storable`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kanmon.store import storable
from kanmon.store.text import REPLACEMENT, storable_json

# any code point at all, lone surrogates and NUL included
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))


@given(ANY_TEXT)
def test_storable_text_is_utf8_without_nul_and_keeps_its_length(text: str) -> None:
    clean = storable(text)
    clean.encode("utf-8")  # never raises
    assert "\x00" not in clean
    assert len(clean) == len(text)  # one replacement character per refused one: nothing shifts
    for original, kept in zip(text, clean, strict=True):
        assert kept in (original, REPLACEMENT)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_text_every_backend_takes_is_left_alone(text: str) -> None:
    assert storable(text) == text


@given(
    st.recursive(ANY_TEXT | st.integers() | st.none(), lambda inner: st.lists(inner) | st.dictionaries(ANY_TEXT, inner))
)
def test_every_string_of_a_json_value_is_made_storable(value: object) -> None:
    def strings(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [text for key, child in node.items() for text in (key, *strings(child))]
        if isinstance(node, list):
            return [text for child in node for text in strings(child)]
        return []

    for text in strings(storable_json(value)):
        text.encode("utf-8")
        assert "\x00" not in text
