"""Long replies cut into Telegram messages: within 4096 UTF-16 units, at paragraph and sentence boundaries, never
inside a code block (one too long is closed and opened again) or an inline code span, nor a surrogate pair."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from kanmon.adapters.telegram.split import TELEGRAM_LIMIT, split_message, utf16_len

FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def test_a_short_text_is_one_message_and_a_blank_one_none() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("  \n ") == []


def test_the_cut_is_at_the_last_paragraph_break_that_fits() -> None:
    first, second = "a" * 3000, "b" * 2000
    assert split_message(f"{first}\n\n{second}") == [first, second]
    third = "c" * 500
    assert split_message(f"{first}\n\n{third}\n\n{second}") == [f"{first}\n\n{third}", second]


def test_without_a_paragraph_break_it_cuts_after_a_sentence() -> None:
    sentence = "This is a sentence of forty characters. "  # 40
    text = sentence * 150  # 6000
    pieces = split_message(text)
    assert all(piece.endswith(".") for piece in pieces[:-1])
    assert " ".join(pieces) == text.strip()


def test_a_word_longer_than_a_message_is_cut_hard() -> None:
    pieces = split_message("x" * 10_000)
    assert [len(piece) for piece in pieces] == [4096, 4096, 1808]


def test_lengths_count_utf16_and_a_surrogate_pair_is_never_split() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units, each emoji two of them
    pieces = split_message(text)
    assert [utf16_len(piece) for piece in pieces] == [4096, 1904]
    assert "".join(pieces) == text  # whole code points only: no lone surrogate anywhere
    assert all(piece.encode("utf-16-le").decode("utf-16-le") == piece for piece in pieces)


def test_a_code_block_that_fits_a_message_moves_whole_to_the_next() -> None:
    prose = "word " * 700  # 3500
    code = "```python\n" + "print(1)\n" * 100 + "```"  # about 915
    pieces = split_message(prose + "\n" + code + "\nafter")
    assert pieces[0] == prose.strip()
    assert pieces[1].startswith("```python\n") and pieces[1].count("```") == 2


def test_a_code_block_longer_than_a_message_is_closed_and_opened_again() -> None:
    lines = [f"line {n:05d} = compute({n})" for n in range(600)]  # about 16,000
    text = "Here:\n```python\n" + "\n".join(lines) + "\n```\nDone."
    pieces = split_message(text)
    assert len(pieces) >= 4
    for piece in pieces:
        assert utf16_len(piece) <= TELEGRAM_LIMIT
        assert len(FENCE.findall(piece)) % 2 == 0, piece[:80]  # every piece's fences are balanced
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n") and piece.endswith("\n```")
    code_lines = [line for piece in pieces for line in piece.splitlines() if line.startswith("line ")]
    assert code_lines == lines  # no line of code was cut in two, lost or repeated


def test_a_cut_never_falls_inside_inline_code() -> None:
    text = "a" * 4080 + " `x y z w` tail words here"
    pieces = split_message(text)
    assert all(piece.count("`") % 2 == 0 for piece in pieces)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300),
            st.sampled_from(["\n\n", "\n", ". ", "```py\n", "\n```\n", "`", "😀", " "]),
        ),
        max_size=80,
    ),
    st.integers(min_value=16, max_value=400),
)
def test_any_text_is_cut_into_pieces_that_fit_and_keep_every_character(parts: list[str], limit: int) -> None:
    text = "".join(parts)
    pieces = split_message(text, limit)
    assert all(0 < utf16_len(piece) <= limit for piece in pieces)
    # nothing is lost and the order is kept; only a cut code block's fences (with their language) are added
    kept, original = _content("".join(pieces)), _content(text)
    if "```" not in text and "~~~" not in text:
        assert kept == original
    remaining = iter(kept)
    assert all(char in remaining for char in original)  # a subsequence


def _content(text: str) -> str:
    """The text without white space and fence characters."""
    return re.sub(r"[\s`~]", "", text)
