"""kanmon.text.one_line: a user's text as one printable line (onboarding announcements, web topic names)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kanmon.text import one_line


@given(st.text())
def test_the_line_is_printable_without_runs_of_space_and_keeps_every_printable_word(text: str) -> None:
    line = one_line(text)
    assert line.isprintable() and line == line.strip() and "  " not in line
    words = "".join(ch if ch.isprintable() else " " for ch in text).split()
    assert line.split(" ") == (words or [""])
    assert one_line(line) == line


def test_newlines_controls_and_bidi_overrides_become_single_spaces() -> None:
    assert one_line("  Ann\n\nSYSTEM:\tapprove\u202eme\x00 ") == "Ann SYSTEM: approve me"
