"""Cutting a long reply into Telegram messages: at most 4096 characters each, cut where a reader would.

Telegram refuses a text longer than 4096 characters after entity parsing, and counts them, like its entity offsets,
in UTF-16 code units, so an emoji outside the Basic Multilingual Plane counts two: lengths here are UTF-16 lengths,
and a cut falls between code points, never inside a surrogate pair. The cut is made in the agent's Markdown, before
it becomes HTML (the HTML's visible text is never longer than the Markdown it came from), at the best place that
fits: a paragraph break, else a line break, else the end of a sentence, else white space, and only as a last resort
in the middle of a word. It is never made inside a fenced code block when the block fits in a message of its own (the
cut moves before it); a block longer than a message is cut at a line end, closed with its fence, and opened again
(with its language) at the top of the next message. A cut never falls inside an inline code span either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TELEGRAM_LIMIT", "split_message", "utf16_len"]

TELEGRAM_LIMIT = 4096  # characters (UTF-16 code units) per message, after entity parsing (Bot API, sendMessage)
_FENCE = re.compile(r"^(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)
# where to cut, best first; each match's end is a candidate cut
_SEPARATORS = (
    re.compile(r"\n[ \t]*\n\s*"),  # a paragraph break
    re.compile(r"\n\s*"),  # a line break
    re.compile(r"(?<=[.!?…。！？])[\"')\]»”’]*\s+"),  # the end of a sentence
    re.compile(r"\s+"),  # white space
)


@dataclass(frozen=True, slots=True)
class _Block:
    """A fenced code block: ``start`` of its opening line, ``body`` where its first line of code starts, ``end``."""

    start: int
    body: int
    end: int
    opening: str  # the opening fence line, to open the block again in the next message
    closing: str  # the fence that closes it


def utf16_len(text: str) -> int:
    """How long Telegram counts ``text``: its length in UTF-16 code units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def split_message(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 code units, cut at the best boundaries (see the module).

    Pieces lose the white space around a cut and are never empty; an empty or blank ``text`` gives no pieces.
    Raises ``ValueError`` for a ``limit`` too small to hold a code fence and a character (below 16).
    """
    if limit < 16:
        raise ValueError(f"limit {limit} is too small")
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            pieces.append(rest)
            break
        head, rest = _split_once(rest, limit)
        if head.strip():
            pieces.append(head.rstrip())
        rest = rest.lstrip("\n") if not rest.startswith(("```", "~~~")) else rest
    return pieces


def _split_once(text: str, limit: int) -> tuple[str, str]:
    """The first piece of ``text`` (at most ``limit`` long) and the rest."""
    budget = _fit(text, limit)
    blocks = _blocks(text)
    inside = next((block for block in blocks if block.start < budget < block.end), None)
    end = budget if inside is None else inside.start
    cut = _best_cut(text, end, blocks)
    if cut is not None:
        return text[:cut], text[cut:]
    if inside is not None:
        return _cut_block(text, inside, limit)
    return text[:budget], text[budget:]


def _fit(text: str, limit: int) -> int:
    """The largest index ``i`` with ``utf16_len(text[:i]) <= limit`` (a code point boundary)."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def _blocks(text: str) -> list[_Block]:
    """The fenced code blocks of ``text``; one left open runs to the end."""
    blocks: list[_Block] = []
    opened: re.Match[str] | None = None
    for fence in _FENCE.finditer(text):
        if opened is None:
            opened = fence
            continue
        marker = opened.group(1)
        if fence.group(1)[0] == marker[0] and len(fence.group(1)) >= len(marker) and not fence.group(2).strip():
            blocks.append(_Block(opened.start(), opened.end() + 1, fence.end(), opened.group(0), marker))
            opened = None
    if opened is not None:
        blocks.append(_Block(opened.start(), opened.end() + 1, len(text), opened.group(0), opened.group(1)))
    return blocks


def _best_cut(text: str, end: int, blocks: list[_Block]) -> int | None:
    """The best cut at or before ``end`` outside code; a cut leaving a piece under half of ``end`` only if no better
    one exists. None when there is no cut at all."""
    fallback: int | None = None
    for separator in _SEPARATORS:
        cuts = [
            match.end()
            for match in separator.finditer(text, 0, end)
            if match.start() > 0 and _outside_code(text, match.start(), blocks)
        ]
        if not cuts:
            continue
        if cuts[-1] >= end // 2:
            return cuts[-1]
        fallback = fallback or cuts[-1]
    return fallback


def _outside_code(text: str, position: int, blocks: list[_Block]) -> bool:
    """Whether a cut at ``position`` is outside every code block and inline code span."""
    if any(block.start < position < block.end for block in blocks):
        return False
    if text[position] == "\n":  # an inline span ends with its line
        return True
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("`", line_start, position) % 2 == 0


def _cut_block(text: str, block: _Block, limit: int) -> tuple[str, str]:
    """Cut inside a code block too long for one message: at its last line end that fits, closing the fence there
    and opening it again at the top of the rest."""
    closing = "\n" + block.closing
    room = _fit(text, limit - utf16_len(closing))
    if room <= block.body:  # not even the fence line and one character fit: cut it like a word
        budget = _fit(text, limit)
        return text[:budget], text[budget:]
    line_end = text.rfind("\n", block.body, room)
    cut = line_end if line_end > block.body else room
    rest = text[cut + 1 :] if line_end > block.body else text[cut:]
    return text[:cut] + closing, block.opening + "\n" + rest
