"""Long replies cut into messages a Matrix homeserver takes, without breaking what they show.

A Matrix event may be at most 65,536 bytes of JSON, envelope and signatures included (Matrix spec, "Size limits"),
so a long reply goes out as several events. The cut is made where a reader would not notice it:

- between paragraphs, else between lines, else between words, and only as a last resort inside a word;
- never inside a fenced code block (```` ``` ```` or ``~~~``) that fits in one message: the whole block moves to the
  next one. A block longer than a message is cut between its lines, and each piece is closed and opened again with
  the same fence and info string (```` ```python ````), so every message renders as code on its own;
- never inside a character, nor between a character and what is drawn with it (combining marks, a zero-width
  joiner and what it joins, variation selectors, skin-tone modifiers): Python strings are code points, so a UTF-16
  surrogate pair is one character here and is never halved.

Sizes are counted as the text's JSON-escaped UTF-8 bytes (``"`` and ``\\`` take two, control characters six), which
is what it costs inside the event.
"""

from __future__ import annotations

import json
import re
import unicodedata

__all__ = ["json_size", "split_message"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_WORD = re.compile(r"\S+\s*|\s+")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")  # lines end at \n only (str.splitlines also cuts at \r, \x1c, \u2028…)
_JOINERS = {0x200D}  # zero-width joiner: glues the characters on both sides
_GLUED = re.compile(
    r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\U000e0100-\U000e01ef]"
)


def json_size(text: str) -> int:
    """The bytes ``text`` takes inside a JSON string (UTF-8, escaped), without the quotes."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2


def split_message(text: str, limit: int) -> list[str]:
    """``text`` as messages of at most ``limit`` bytes each (:func:`json_size`), in order; ``[]`` for blank text.

    Joined again, the messages hold every non-blank character of ``text`` in order; only white space at a cut and
    the fence lines that close and reopen a cut code block differ. Raises ``ValueError`` when ``limit`` is too small
    for a fence and a character (below 64).
    """
    if limit < 64:
        raise ValueError(f"limit {limit} is too small: at least 64 bytes")
    if not text.strip():
        return []
    if json_size(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for unit in _units(text):
        if json_size(current + unit) <= limit:
            current += unit
            continue
        if current.strip():
            chunks.append(current)
        current = ""
        if json_size(unit) <= limit:
            current = unit
            continue
        pieces = _split_code(unit, limit) if _FENCE.match(unit.partition("\n")[0]) else _split_text(unit, limit)
        chunks.extend(pieces[:-1])
        current = pieces[-1]
    if current.strip():
        chunks.append(current)
    return [chunk.strip("\n") for chunk in chunks if chunk.strip()]


def _units(text: str) -> list[str]:
    """``text`` as paragraphs and fenced code blocks, each with the blank lines after it; joined, they are ``text``."""
    units: list[str] = []
    current: list[str] = []
    fence: str | None = None  # the fence of the open code block
    for line in _LINE.findall(text):
        match = _FENCE.match(line.rstrip("\r\n"))
        if fence is None and match is not None:  # a code block starts: it is a unit of its own
            if current:
                units.append("".join(current))
                current = []
            fence = match.group(1)
            current.append(line)
            continue
        current.append(line)
        if fence is not None:
            closes = match is not None and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)
            if closes and match is not None and not match.group(2).strip():
                fence = None
                units.append("".join(current))
                current = []
            continue
        if not line.strip() and len(current) > 1:  # a blank line ends a paragraph
            units.append("".join(current))
            current = []
    if current:
        units.append("".join(current))
    return units


def _split_code(block: str, limit: int) -> list[str]:
    """A code block too long for one message, cut between lines; each piece a closed block of its own."""
    lines = _LINE.findall(block)
    opening = lines[0].rstrip("\r\n")
    match = _FENCE.match(opening)
    assert match is not None
    closing = match.group(1)
    body = lines[1:]
    end = ""
    last = _FENCE.match(body[-1].rstrip("\r\n")) if body else None
    if body and last is not None and last.group(1)[0] == closing[0] and not last.group(2).strip():
        end = body.pop()
    close_line = max(closing, end.rstrip("\r\n"), key=len)
    room = limit - json_size(f"{opening}\n") - json_size(f"\n{close_line}\n")
    if room < 16:  # an info string so long that no line fits beside it: plain text it is
        return _split_text(block, limit)
    pieces: list[str] = []
    current = ""
    for line in body:
        for part in [line] if json_size(line) <= room else _split_text(line, room):
            if current and json_size(current + part) > room:
                pieces.append(current)
                current = ""
            current += part
    pieces.append(current)
    framed = [f"{opening}\n{piece.rstrip(chr(10))}\n{closing}\n" for piece in pieces[:-1]]
    # the last piece keeps the block's own closing line (none when the block was left open at the end)
    framed.append(f"{opening}\n{pieces[-1]}{end}")
    return framed


def _split_text(text: str, limit: int) -> list[str]:
    """Plain text cut between lines, else words, else characters; pieces of at most ``limit`` bytes."""
    tokens = [token for line in _LINE.findall(text) for token in _WORD.findall(line)]
    pieces: list[str] = []
    current = ""
    for token in tokens:
        parts = [token] if json_size(token) <= limit else _split_chars(token, limit)
        for part in parts:
            if current and json_size(current + part) > limit:
                pieces.append(current)
                current = ""
            current += part
    pieces.append(current)
    return pieces


def _split_chars(word: str, limit: int) -> list[str]:
    """One overlong word cut between characters, never inside a cluster that is drawn as one."""
    pieces: list[str] = []
    current = ""
    size = 0
    for cluster in _clusters(word):
        cost = json_size(cluster)
        if current and size + cost > limit:
            pieces.append(current)
            current, size = "", 0
        current += cluster
        size += cost
    if current:
        pieces.append(current)
    return pieces


def _clusters(text: str) -> list[str]:
    """``text`` in pieces that must stay together: a character with its marks, joiners and modifiers."""
    clusters: list[str] = []
    for char in text:
        glued = bool(clusters) and (
            _GLUED.match(char) is not None
            or unicodedata.combining(char) != 0
            or ord(char) in _JOINERS
            or ord(clusters[-1][-1]) in _JOINERS
            or _regional_pair(clusters[-1], char)
        )
        if glued:
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def _regional_pair(previous: str, char: str) -> bool:
    """Whether ``char`` completes a flag: the second of two regional indicator letters."""
    regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
    return regional and len(previous) == 1 and 0x1F1E6 <= ord(previous) <= 0x1F1FF
