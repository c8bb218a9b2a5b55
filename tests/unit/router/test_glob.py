"""Globs behave exactly like Go's path.Match returning (true, nil); malformed patterns match nothing.

The table is derived from Go's documented grammar and from the cases in Go's own ``path/match_test.go``; each case's
expected answer is what Go gives (BAD = Go reports ErrBadPattern for some input, so we match nothing, ever).
"""

from __future__ import annotations

import re
import string
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.router import GlobError, compile_glob, glob_match, is_valid_glob

BAD: Final = "bad"
Row = tuple[str, str, bool | str]

GO_TABLE: list[Row] = [  # path/match_test.go
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[x-]", "-", BAD),
    ("[x-]", "z", BAD),
    ("[-x]", "x", BAD),
    ("[-x]", "-", BAD),
    ("[-x]", "a", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("a[", "ab", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
    ("*x", "xxx", True),
]

LITERALS: list[Row] = [
    ("", "", True),
    ("", "a", False),
    ("a", "", False),
    ("abc", "ABC", False),
    ("ABC", "ABC", True),
    ("abc", "abcd", False),
    ("abcd", "abc", False),
    ("abc", "xabc", False),
    ("a b", "a b", True),
    ("a=b", "a=b", True),
    ("telegram:-100", "telegram:-100", True),
    ("é", "é", True),
    ("é", "e", False),
    ("日本", "日本", True),
    ("!", "!", True),
    ("a!b", "a!b", True),
    ("]", "]", True),
    ("a]b", "a]b", True),
    ("-", "-", True),
    ("^", "^", True),
    ("/", "/", True),
    ("//", "/", False),
    ("a/b", "a/b", True),
]

STARS: list[Row] = [
    ("*", "", True),
    ("*", "/", False),
    ("*", "a/", False),
    ("*", "/a", False),
    ("*", "日本語", True),
    ("**", "abc", True),
    ("**", "", True),
    ("***", "a", True),
    ("a**b", "ab", True),
    ("*a", "a", True),
    ("*a", "ba", True),
    ("*a", "ab", False),
    ("*/*", "a/b", True),
    ("*/*", "/", True),
    ("*/*", "a/b/c", False),
    ("*/", "a/", True),
    ("/*", "/", True),
    ("/*", "/x", True),
    ("/*", "x/", False),
    ("a*b", "ab", True),
    ("a*b", "axxxb", True),
    ("a*b", "axxxbx", False),
    ("a*b*", "axbyb", True),
    ("*.txt", "notes.txt", True),
    ("*.txt", "dir/notes.txt", False),
    ("*b*", "abc", True),
    ("*b*", "ac", False),
    ("*☺*", "a☺b", True),
    ("x*x", "x", False),
    ("x*x", "xx", True),
    ("x*x", "xax", True),
    ("*x*x*", "xx", True),
    ("*aab", "aaab", True),
    ("*ab*ab", "abab", True),
    ("*ab*ab", "ab", False),
    ("a/*/c", "a/b/c", True),
    ("a/*/c", "a//c", True),
    ("a/*/c", "a/b/x/c", False),
    ("a/*", "a/", True),
    ("a/*", "a", False),
]

QUESTIONS: list[Row] = [
    ("?", "a", True),
    ("?", "", False),
    ("?", "ab", False),
    ("?", "/", False),
    ("??", "ab", True),
    ("??", "日本", True),
    ("?", "日", True),
    ("??", "日", False),
    ("a?c", "a/c", False),
    ("?*", "", False),
    ("?*", "a", True),
    ("*?", "", False),
    ("*?", "abc", True),
    ("*?", "a/", False),
    ("?/?", "a/b", True),
    ("\\?", "?", True),
    ("\\?", "a", False),
]

CLASSES: list[Row] = [
    ("[abc]", "b", True),
    ("[abc]", "d", False),
    ("[abc]", "", False),
    ("[abc]", "ab", False),
    ("[a-c]", "c", True),
    ("[a-c]", "A", False),
    ("[A-Z]", "a", False),
    ("[a-zA-Z0-9]", "Q", True),
    ("[a-zA-Z0-9]", "_", False),
    ("[^abc]", "d", True),
    ("[^abc]", "a", False),
    ("[^abc]", "", False),
    ("[!abc]", "!", True),
    ("[!abc]", "d", False),
    ("[^a]", "/", True),
    ("[/]", "/", True),
    ("a[/]b", "a/b", True),
    ("[*]", "*", True),
    ("[*]", "a", False),
    ("[?]", "?", True),
    ("[?]", "a", False),
    ("[[]", "[", True),
    ("[z-a]", "m", False),
    ("[z-a]", "z", False),
    ("[^z-a]", "m", True),
    ("[a-a]", "a", True),
    ("[\\^]", "^", True),
    ("[a^]", "^", True),
    ("[^^]", "^", False),
    ("[^^]", "a", True),
    ("[\\]]", "]", True),
    ("[\\\\]", "\\", True),
    ("[\\a-\\c]", "b", True),
    ("[a\\-c]", "b", False),
    ("[a\\-c]", "-", True),
    ("[α-ω]", "λ", True),
    ("[α-ω]", "a", False),
    ("[日]", "日", True),
    ("[^日]", "本", True),
    ("[^日]", "日", False),
    ("[ab][cd]", "ac", True),
    ("[ab][cd]", "ca", False),
    ("[[]*]", "[x]", True),
    ("[a*]", "*", True),
    ("x[a*]y", "xay", True),
]

ESCAPES: list[Row] = [
    ("\\a", "a", True),
    ("\\\\", "\\", True),
    ("\\\\", "a", False),
    ("\\[", "[", True),
    ("\\[a]", "[a]", True),
    ("\\[a]", "a", False),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\é", "é", True),
    ("\\/", "/", True),
    ("\\]", "]", True),
    ("\\-", "-", True),
    ("\\!", "!", True),
]

MALFORMED: list[Row] = [
    ("[a-]]", "a", BAD),
    ("[]]", "]", BAD),
    ("[^]]", "a", BAD),
    ("[]", "", BAD),
    ("[^]", "a", BAD),
    ("[a", "a", BAD),
    ("[a-", "a", BAD),
    ("[a-b", "a", BAD),
    ("[\\", "a", BAD),
    ("[a\\", "a", BAD),
    ("[\\]", "]", BAD),
    ("[a]b[", "ab", BAD),
    ("a\\", "a", BAD),
    ("\\", "", BAD),
    ("x[", "a", BAD),
    ("*[", "abc", BAD),
    ("*[", "", BAD),
    ("[", "", BAD),
    ("a*[", "abc", BAD),
    ("a*b[", "ab", BAD),
    ("abc[", "abc", BAD),
    ("*\\", "x", BAD),
    ("a*[a", "ab", BAD),
    ("ab*c[", "x", BAD),
    ("*x*[", "x", BAD),
    ("[]*]", "]", BAD),
    ("[a-z", "m", BAD),
    ("[^-a]", "b", BAD),
    ("[a--]", "a", BAD),
    ("[--a]", "-", BAD),
]

# Go commits to the first place a chunk fits after a star and never backtracks; and its star steps by byte.
GO_QUIRKS: list[Row] = [
    ("*[^a]", "a/", True),
    ("*[^a]*", "b", True),
    ("*[^a]*", "bb/ba", False),
    ("*[^a]*", "b/ba", False),
    ("*[^é]", "é", True),
    ("[^é]", "é", False),
    ("*[\ufffd]", "é", True),
    ("*[☺]", "x☺", True),
]

ROUTE_LIKE: list[Row] = [
    ("telegram", "telegram", True),
    ("telegram", "Telegram", False),
    ("-100*", "-1001234", True),
    ("tg:*", "tg:123", True),
    ("tg:*", "", False),
    ("web", "web:support", False),
    ("corp/*", "corp/eng", True),
    ("corp/*", "corp/eng/x", False),
    ("*", "corp/eng", False),
    ("message", "message", True),
    ("re*", "react", True),
    ("re*", "reply", True),
    ("{re*}", "react", False),
]

TABLES = {
    "go": GO_TABLE,
    "literal": LITERALS,
    "star": STARS,
    "question": QUESTIONS,
    "class": CLASSES,
    "escape": ESCAPES,
    "malformed": MALFORMED,
    "go-quirk": GO_QUIRKS,
    "route": ROUTE_LIKE,
}
CASES = [
    pytest.param(pattern, value, expected, id=f"{table}:{pattern!r}~{value!r}")
    for table, rows in TABLES.items()
    for pattern, value, expected in rows
]


def test_the_table_holds_at_least_150_cases() -> None:
    assert len(CASES) >= 150


@pytest.mark.parametrize(("pattern", "value", "expected"), CASES)
def test_glob_answers_like_go_path_match(pattern: str, value: str, expected: bool | str) -> None:
    if expected == BAD:
        assert not is_valid_glob(pattern)
        assert glob_match(pattern, value) is False
        with pytest.raises(GlobError):
            compile_glob(pattern)
    else:
        assert is_valid_glob(pattern)
        assert glob_match(pattern, value) is expected
        assert compile_glob(pattern).match(value) is expected


@pytest.mark.parametrize(
    ("pattern", "position", "reason"),
    [
        pytest.param("[", 0, "unclosed character class", id="lone-bracket"),
        pytest.param("ab[c", 2, "unclosed character class", id="unclosed-after-literal"),
        pytest.param("a\\", 1, "trailing backslash", id="trailing-backslash"),
        pytest.param("[]a]", 1, "empty character class", id="bracket-first"),
        pytest.param("[^]", 2, "empty character class", id="negated-empty"),
        pytest.param("[a-b-c]", 4, "'-' must be escaped", id="dash-after-range"),
        pytest.param("[-a]", 1, "'-' must be escaped", id="dash-first"),
        pytest.param("x*[a-]", 5, "']' must be escaped", id="range-without-end"),
    ],
)
def test_glob_error_names_the_offset_and_the_reason(pattern: str, position: int, reason: str) -> None:
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern)
    assert caught.value.position == position
    assert reason in caught.value.reason
    assert repr(pattern) in str(caught.value)


def test_glob_error_is_a_route_error_and_invalid_input() -> None:
    from kanmon.errors import InvalidInput
    from kanmon.router import RouteError

    assert issubclass(GlobError, RouteError)
    assert issubclass(RouteError, InvalidInput)


# --- properties ----------------------------------------------------------------------------------------------------

META = "*?[\\"
plain_text = st.text(alphabet=st.characters(exclude_characters=META, codec="utf-8"), max_size=12)
any_text = st.text(max_size=12)


@given(plain_text, any_text)
def test_a_glob_without_metacharacters_matches_only_itself(pattern: str, other: str) -> None:
    assert glob_match(pattern, pattern)
    assert glob_match(pattern, other) is (other == pattern)


@given(any_text)
def test_star_never_matches_a_slash(value: str) -> None:
    assert glob_match("*", value) is ("/" not in value)


@given(any_text, any_text)
def test_escaping_every_character_matches_exactly_that_string(value: str, other: str) -> None:
    pattern = "".join("\\" + char for char in value)
    assert glob_match(pattern, value)
    assert glob_match(pattern, other) is (other == value)


@given(any_text)
def test_one_question_mark_per_character_matches_iff_there_is_no_slash(value: str) -> None:
    assert glob_match("?" * len(value), value) is ("/" not in value)


@given(
    st.text(alphabet=st.characters(exclude_characters="[]\\", codec="utf-8"), max_size=8),
    st.sampled_from(["[", "\\", "[]", "[^]", "[-a]", "[a-]", "[a", "[a-b-c]", "[\\"]),
    any_text,
)
def test_a_malformed_pattern_never_matches(prefix: str, broken: str, value: str) -> None:
    pattern = prefix + broken
    assert not is_valid_glob(pattern)
    assert glob_match(pattern, value) is False


def _oracle(pattern: str) -> re.Pattern[str]:
    """A regex for patterns whose classes never admit '/', where Go's greedy walk equals full backtracking."""
    out = []
    for token in re.findall(r"\[[^\]]*\]|.", pattern):
        out.append({"*": "[^/]*", "?": "[^/]"}.get(token, token if token.startswith("[") else re.escape(token)))
    return re.compile("".join(out))


@given(
    st.lists(st.sampled_from(["a", "b", "/", "*", "?", "[ab]", "[a-b]", "[/]"]), max_size=7).map("".join),
    st.text(alphabet="ab/", max_size=8),
)
def test_glob_agrees_with_a_backtracking_oracle_when_no_class_admits_a_slash_next_to_a_star(
    pattern: str, value: str
) -> None:
    if "[/]" in pattern and "*" in pattern:
        # A class that admits '/' after a star is where Go's no-backtracking walk can differ (see GO_QUIRKS).
        return
    assert glob_match(pattern, value) is (_oracle(pattern).fullmatch(value) is not None)


@given(st.text(alphabet=string.ascii_letters + "*?[]^-\\/", max_size=10), st.text(alphabet="ab/-]^\\", max_size=6))
def test_glob_match_never_raises_and_agrees_with_the_compiled_form(pattern: str, value: str) -> None:
    expected = is_valid_glob(pattern) and compile_glob(pattern).match(value)
    assert glob_match(pattern, value) is expected
