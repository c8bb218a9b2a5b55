"""Globs with exactly the semantics of Go's ``path.Match`` (SPEC §6.4).

The answer for ``(pattern, value)`` is True exactly when Go's ``path.Match(pattern, value)`` returns ``(true, nil)``:

- ``*`` matches any run of characters other than ``/``, including none; ``?`` matches one character other than ``/``;
- ``[abc]``, ``[a-z]``, ``[^a-z]`` are classes (only ``^`` negates, ``!`` is ordinary), ``\\`` escapes the next
  character also inside a class; a class may match ``/``; everything else matches itself, case-sensitively;
- the whole value must match.

A malformed pattern (unclosed ``[``, empty class, unescaped ``-`` or ``]`` where a class member is expected, trailing
``\\``) matches nothing. Go notices some of these only part-way through a match; here the whole pattern is checked
once by :func:`compile_glob`, which raises :class:`GlobError` with the offset of the problem.

The matcher is a port of Go's algorithm (``scanChunk``/``matchChunk``/``getEsc``), not a translation to ``fnmatch``
or a regular expression, and like Go it walks the UTF-8 bytes of the value, decoding a rune where ``?`` or a class
needs one. That keeps even Go's corner cases: a ``*`` retries the next chunk at every *byte*, so ``*[^☺]`` matches
``"☺"`` by way of the rune's invalid tail bytes, exactly as Go answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kanmon.router.errors import GlobError

__all__ = ["Glob", "compile_glob", "glob_match", "is_valid_glob"]

_SLASH = 0x2F
_RUNE_ERROR = 0xFFFD


@dataclass(frozen=True, slots=True)
class _Literal:
    data: bytes


@dataclass(frozen=True, slots=True)
class _AnyRune:
    pass


@dataclass(frozen=True, slots=True)
class _Class:
    negated: bool
    ranges: tuple[tuple[int, int], ...]

    def accepts(self, rune: int) -> bool:
        inside = any(lo <= rune <= hi for lo, hi in self.ranges)
        return inside != self.negated


_Item = _Literal | _AnyRune | _Class
_ANY = _AnyRune()


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A run of fixed-width items, preceded by a star or not (Go's scanChunk unit)."""

    star: bool
    items: tuple[_Item, ...]


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled, well-formed glob; :meth:`match` is pure and never raises."""

    pattern: str
    chunks: tuple[_Chunk, ...]

    def match(self, value: str) -> bool:
        """True when ``value`` matches the whole pattern (Go ``path.Match`` semantics)."""
        return _match(self.chunks, value.encode("utf-8", "surrogatepass"))


def compile_glob(pattern: str) -> Glob:
    """Compile ``pattern``, or raise :class:`GlobError` naming the offset of the first problem."""
    return _compile_cached(pattern)


def is_valid_glob(pattern: str) -> bool:
    """True when ``pattern`` is well-formed."""
    try:
        _compile_cached(pattern)
    except GlobError:
        return False
    return True


def glob_match(pattern: str, value: str) -> bool:
    """True when Go's ``path.Match(pattern, value)`` returns ``(true, nil)``; a malformed pattern matches nothing."""
    try:
        glob = _compile_cached(pattern)
    except GlobError:
        return False
    return glob.match(value)


# Routes are few and their globs are re-used on every message, so compiling once pays; the cache is bounded.
@lru_cache(maxsize=4096)
def _compile_cached(pattern: str) -> Glob:
    chunks: list[_Chunk] = []
    i = 0
    while i < len(pattern):
        star, start, end = _scan_chunk(pattern, i)
        chunks.append(_Chunk(star, _parse_chunk(pattern, start, end)))
        i = end
    return Glob(pattern, tuple(chunks))


# --- compiling ---------------------------------------------------------------------------------------------------


def _scan_chunk(pattern: str, i: int) -> tuple[bool, int, int]:
    """Go's scanChunk from offset ``i``: skip stars, then find where the next unbracketed star starts."""
    star = False
    while i < len(pattern) and pattern[i] == "*":
        i += 1
        star = True
    start = i
    in_range = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif char == "[":
            in_range = True
        elif char == "]":
            in_range = False
        elif char == "*" and not in_range:
            break
        i += 1
    return star, start, i


def _parse_chunk(pattern: str, i: int, end: int) -> tuple[_Item, ...]:
    """Parse ``pattern[i:end]`` the way Go's matchChunk consumes it, raising where Go reports ErrBadPattern."""
    items: list[_Item] = []
    literal = bytearray()
    while i < end:
        char = pattern[i]
        if char in "[?":
            if literal:
                items.append(_Literal(bytes(literal)))
                literal.clear()
            if char == "?":
                items.append(_ANY)
                i += 1
            else:
                klass, i = _parse_class(pattern, i, end)
                items.append(klass)
            continue
        if char == "\\":
            i += 1
            if i >= end:
                raise GlobError(pattern, i - 1, "trailing backslash escapes nothing")
        literal += pattern[i].encode("utf-8", "surrogatepass")
        i += 1
    if literal:
        items.append(_Literal(bytes(literal)))
    return tuple(items)


def _parse_class(pattern: str, opened: int, end: int) -> tuple[_Class, int]:
    """Parse the class whose ``[`` is at ``opened``; return it and the offset after its ``]``."""
    i = opened + 1
    negated = i < end and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[int, int]] = []
    while not (i < end and pattern[i] == "]" and ranges):
        lo, i = _class_member(pattern, i, end, opened, first=not ranges)
        hi = lo
        # _class_member guarantees something follows, so this index is safe (as in Go's getEsc contract).
        if pattern[i] == "-":
            hi, i = _class_member(pattern, i + 1, end, opened, first=False)
        ranges.append((lo, hi))
    return _Class(negated, tuple(ranges)), i + 1


def _class_member(pattern: str, i: int, end: int, opened: int, *, first: bool) -> tuple[int, int]:
    """Go's getEsc: one (possibly escaped) character of a class, which must not be the class's last character."""
    if i >= end:
        raise GlobError(pattern, opened, "unclosed character class")
    char = pattern[i]
    if char == "-":
        raise GlobError(pattern, i, "'-' must be escaped where a class member is expected")
    if char == "]":
        reason = "empty character class" if first else "']' must be escaped where a class member is expected"
        raise GlobError(pattern, i, reason)
    if char == "\\":
        i += 1
        if i >= end:
            raise GlobError(pattern, opened, "unclosed character class")
        char = pattern[i]
    if 0xD800 <= ord(char) <= 0xDFFF:
        # Go decodes the class member as UTF-8 and rejects what is not a valid rune.
        raise GlobError(pattern, i, "invalid character in class")
    if i + 1 >= end:
        raise GlobError(pattern, opened, "unclosed character class")
    return ord(char), i + 1


# --- matching ----------------------------------------------------------------------------------------------------


def _match(chunks: tuple[_Chunk, ...], name: bytes) -> bool:
    """Go's Match loop over pre-scanned chunks; positions are byte offsets into ``name``."""
    pos = 0
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        is_last = index == last
        if chunk.star and not chunk.items:
            # A trailing star matches the rest unless it holds a slash.
            return name.find(b"/", pos) < 0
        end = _match_chunk(chunk.items, name, pos)
        # The last chunk must use up the name; otherwise keep looking past the star.
        if end >= 0 and (end == len(name) or not is_last):
            pos = end
            continue
        if not chunk.star:
            return False
        end = _match_after_star(chunk.items, name, pos, is_last)
        if end < 0:
            return False
        pos = end
    return pos == len(name)


def _match_after_star(items: tuple[_Item, ...], name: bytes, pos: int, is_last: bool) -> int:
    """Let the star eat 1, 2, … bytes (never a slash) and return where the first fitting chunk match ends, or -1."""
    i = pos
    while i < len(name) and name[i] != _SLASH:
        end = _match_chunk(items, name, i + 1)
        if end >= 0 and not (is_last and end != len(name)):
            return end
        i += 1
    return -1


def _match_chunk(items: tuple[_Item, ...], name: bytes, pos: int) -> int:
    """Match ``items`` at ``name[pos:]``; return the offset after them, or -1."""
    for item in items:
        if pos >= len(name):
            return -1
        if isinstance(item, _Literal):
            if not name.startswith(item.data, pos):
                return -1
            pos += len(item.data)
            continue
        rune, width = _decode_rune(name, pos)
        if isinstance(item, _AnyRune):
            if name[pos] == _SLASH:
                return -1
        elif not item.accepts(rune):
            return -1
        pos += width
    return pos


def _decode_rune(data: bytes, i: int) -> tuple[int, int]:
    """Go's utf8.DecodeRune at ``data[i:]``: (rune, width), or (U+FFFD, 1) for an invalid or truncated sequence."""
    lead = data[i]
    if lead < 0x80:
        return lead, 1
    if 0xC2 <= lead <= 0xDF:
        width = 2
    elif 0xE0 <= lead <= 0xEF:
        width = 3
    elif 0xF0 <= lead <= 0xF4:
        width = 4
    else:
        return _RUNE_ERROR, 1
    try:
        # Python's strict decoder rejects the same overlong, surrogate and out-of-range forms Go does.
        return ord(data[i : i + width].decode("utf-8")), width
    except UnicodeDecodeError:
        return _RUNE_ERROR, 1
