"""The agent output protocol (SPEC §9), sans I/O: bytes in, events out.

An agent writes blocks to stdout::

    ---ARIZUKO_OUTPUT_START---
    {"status": "ok", "result": "...", "newSessionId": "...", "error": ""}
    ---ARIZUKO_OUTPUT_END---

:class:`OutputParser` takes stdout in chunks of any size (a marker may be split at any byte, lines may end in
CRLF) and returns :class:`Output`, :class:`Heartbeat` and diagnostics (:class:`InvalidBlock`,
:class:`OutputLimitExceeded`). Text outside the blocks is discarded, but a capped tail of it is kept for the run
log. :func:`clean_result` turns a raw result into what a chat should see: without the model's hidden reasoning
(:data:`REASONING_TAGS` by default), with ``<status>`` lines.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kanmon.container.actions import actions_problem, parse_actions
from kanmon.container.events import AttachmentRef, Heartbeat, Output
from kanmon.container.usage import parse_usage

__all__ = [
    "END_MARKER",
    "LOG_LIMIT",
    "MAX_ATTACHMENTS",
    "OUTPUT_LIMIT",
    "REASONING_TAGS",
    "START_MARKER",
    "CappedTail",
    "InvalidBlock",
    "OutputLimitExceeded",
    "OutputParser",
    "ParserEvent",
    "clean_result",
    "encode_block",
    "is_reasoning_tag",
    "reasoning_tag_names",
]

START_MARKER = b"---ARIZUKO_OUTPUT_START---"
END_MARKER = b"---ARIZUKO_OUTPUT_END---"
OUTPUT_LIMIT = 10 * 1024 * 1024  # bytes of stdout per run; past it the run is killed
MAX_ATTACHMENTS = 10  # files one output block may list
LOG_LIMIT = 64 * 1024  # bytes kept of stray stdout text and of stderr, for the run log
#: The tags models wrap hidden reasoning in, by default (matched in any case): SPEC §9 names think and internal.
REASONING_TAGS: tuple[str, ...] = (
    "think",
    "thinking",
    "thought",
    "thoughts",
    "reasoning",
    "reflection",
    "internal",
    "scratchpad",
)

_STATUSES: dict[str, Literal["ok", "error"]] = {"ok": "ok", "success": "ok", "error": "error"}


@dataclass(frozen=True, slots=True)
class InvalidBlock:
    """A block whose body is not a valid output object; it is skipped (but still counts as a sign of life)."""

    reason: str
    body: str  # the first 200 characters, for the log


@dataclass(frozen=True, slots=True)
class OutputLimitExceeded:
    """The run wrote more than ``limit`` bytes to stdout; the parser ignores everything after this."""

    limit: int


ParserEvent = Output | Heartbeat | InvalidBlock | OutputLimitExceeded


class CappedTail:
    """Keep the last ``limit`` bytes of a stream, counting what was dropped."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self.limit = limit
        self.dropped = 0
        self._data = bytearray()

    def append(self, data: bytes) -> None:
        """Add ``data``, dropping the oldest bytes past the limit."""
        self._data += data
        excess = len(self._data) - self.limit
        if excess > 0:
            del self._data[:excess]
            self.dropped += excess

    def text(self) -> str:
        """The kept bytes as text, with a note of how much was dropped before them."""
        body = self._data.decode("utf-8", errors="replace")
        return f"[... {self.dropped} bytes dropped ...]\n{body}" if self.dropped else body


class OutputParser:
    """Incremental parser of an agent's stdout.

    ``output_limit`` and ``log_limit`` are in bytes; ``reasoning_tags`` are the tag names whose sections
    :func:`clean_result` hides from each output's ``text`` (a name that is not a tag name raises ``ValueError``).
    """

    def __init__(
        self,
        *,
        output_limit: int = OUTPUT_LIMIT,
        log_limit: int = LOG_LIMIT,
        reasoning_tags: Iterable[str] = REASONING_TAGS,
    ) -> None:
        self.output_limit = output_limit
        self.reasoning_tags = reasoning_tag_names(reasoning_tags)
        self.stray = CappedTail(log_limit)
        self.outputs = 0
        self.received = 0
        self.exceeded = False
        self._partial = bytearray()  # the current line, not yet ended by b"\n"
        self._block: list[bytes] | None = None  # the lines of the block being read, None outside a block

    def feed(self, data: bytes) -> list[ParserEvent]:
        """Consume a chunk of stdout and return the events it completes."""
        if self.exceeded or not data:
            return []
        room = self.output_limit - self.received
        self.received += len(data)
        # bytes up to the cap are parsed as usual, so where the chunks are cut never changes the events
        events = self._lines(data[:room]) if room > 0 else []
        if len(data) > room:
            self.exceeded = True
            self._partial.clear()
            self._block = None
            events.append(OutputLimitExceeded(self.output_limit))
        return events

    def _lines(self, data: bytes) -> list[ParserEvent]:
        self._partial += data
        if b"\n" not in data:  # the line goes on: searching all of it again per piece would be quadratic
            return []
        buffer, events, start = self._partial, [], 0
        nearest = {START_MARKER: -2, END_MARKER: -2}  # where each marker occurs next (-1: nowhere further)
        while True:
            # Only a marker's line changes anything: the whole lines before it go to the log (outside a block) or to
            # the block in one piece, not one by one (10 MiB of blank lines cost 12 s of the event loop).
            for marker, at in nearest.items():
                if at != -1 and at < start:
                    nearest[marker] = buffer.find(marker, start)
            stop = min((at for at in nearest.values() if at != -1), default=len(buffer))
            if (cut := buffer.rfind(b"\n", start, stop) + 1) > start:
                (self.stray.append if self._block is None else self._block.append)(bytes(buffer[start:cut]))
                start = cut
            if (end := buffer.find(b"\n", start)) == -1:
                break
            if (event := self._line(bytes(buffer[start : end + 1]))) is not None:
                events.append(event)
            start = end + 1
        del buffer[:start]
        return events

    def close(self) -> list[ParserEvent]:
        """End of stream: finish a last line without a newline; a block never closed is dropped."""
        events: list[ParserEvent] = []
        if self._partial and not self.exceeded:
            event = self._line(bytes(self._partial))
            if event is not None:
                events.append(event)
        self._partial.clear()
        if self._block is not None:
            body = b"".join(self._block).decode("utf-8", errors="replace")
            events.append(InvalidBlock("block never closed", body[:200]))
            self._block = None
        return events

    def _line(self, line: bytes) -> ParserEvent | None:
        marker = line.strip()
        if marker == START_MARKER:
            if self._block is not None:
                # a new START inside a block: the agent gave up on the first one; keep its bytes for the log
                self.stray.append(b"".join(self._block))
            self._block = []
            return None
        if self._block is None:
            self.stray.append(line)
            return None
        if marker == END_MARKER:
            body, self._block = b"".join(self._block), None
            return self._decode(body)
        self._block.append(line)
        return None

    def _decode(self, body: bytes) -> ParserEvent:
        # Bytes that are not UTF-8 are read as U+FFFD, as Docker's log stores them: a re-attached run's output is
        # replayed from that log, and must parse (and be numbered) exactly as it did live.
        text = body.decode("utf-8", errors="replace")
        try:
            value = json.loads(text)
        except ValueError as exc:
            return InvalidBlock(f"not JSON: {exc}", text[:200])
        preview = text[:200]
        if not isinstance(value, dict):
            return InvalidBlock("not a JSON object", preview)
        if value.get("heartbeat") is True:
            return Heartbeat()
        problem = _problem(value)
        if problem:
            return InvalidBlock(problem, preview)
        usage, usage_problem = parse_usage(value.get("usage"))
        output = Output(
            index=self.outputs,
            status=_STATUSES[value["status"]],
            result=value.get("result"),
            text=clean_result(value.get("result") or "", reasoning_tags=self.reasoning_tags),
            new_session_id=value.get("newSessionId") or None,
            error=value.get("error") or None,
            attachments=tuple(AttachmentRef(item["path"], item.get("name")) for item in value.get("attachments") or ()),
            actions=parse_actions(value.get("actions")),
            usage=usage,
            usage_problem=usage_problem,
        )
        self.outputs += 1
        return output


def _problem(value: dict[str, Any]) -> str | None:
    """What is wrong with an output object, or None."""
    if value.get("status") not in _STATUSES:
        return f"status must be one of ok, success, error, not {value.get('status')!r}"
    for key in ("result", "newSessionId", "error"):
        if not isinstance(value.get(key), str | None):
            return f"{key} must be a string or null"
    return _attachments_problem(value.get("attachments")) or actions_problem(value.get("actions"))


def _attachments_problem(attachments: object) -> str | None:
    """What is wrong with a block's ``attachments`` (null, or a list of ``{"path": str, "name"?: str}``), or None."""
    if attachments is None:
        return None
    if not isinstance(attachments, list):
        return "attachments must be a list of {path, name} objects"
    if len(attachments) > MAX_ATTACHMENTS:
        return f"at most {MAX_ATTACHMENTS} attachments per block, not {len(attachments)}"
    for index, item in enumerate(attachments):
        if not isinstance(item, dict):
            return f"attachments[{index}] must be an object"
        if not isinstance(item.get("path"), str) or not item["path"]:
            return f"attachments[{index}].path must be a non-empty string"
        if not isinstance(item.get("name"), str | None):
            return f"attachments[{index}].name must be a string"
    return None


def encode_block(value: dict[str, Any]) -> bytes:
    """One output block, as an agent writes it (used by the reference agent's tests and by fakes)."""
    body = json.dumps(value, ensure_ascii=False).encode()
    return START_MARKER + b"\n" + body + b"\n" + END_MARKER + b"\n"


_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
_STATUS_TAG = re.compile(r"<status>(.*?)</status>", re.IGNORECASE | re.DOTALL)
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
_MAX_PASSES = 8  # removing sections may join pieces into a new tag; past this many rounds, nothing is shown


def is_reasoning_tag(name: str) -> bool:
    """True when ``name`` can be a reasoning tag: a letter, then letters, digits, ``_``, ``.``, ``:`` or ``-``."""
    return _TAG_NAME.fullmatch(name) is not None


def reasoning_tag_names(names: Iterable[str]) -> tuple[str, ...]:
    """Reasoning tag names as matched: lower-cased, each once; ``ValueError`` for one that is not a tag name."""
    return _tag_names(tuple(names))


@functools.lru_cache(maxsize=16)
def _tag_names(names: tuple[str, ...]) -> tuple[str, ...]:
    # cached: clean_result checks its names on every output block, and a run's are the same every time (the checks
    # were a quarter of parsing a short block); a name refused raises, and errors are never cached
    for name in names:
        if not is_reasoning_tag(name):
            raise ValueError(f"reasoning tag {name!r} is not a tag name (a letter, then letters, digits, _ . : -)")
    return tuple(dict.fromkeys(name.lower() for name in names))


@functools.lru_cache(maxsize=16)
def _reasoning_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """An opening, closing or self-closing tag of one of ``names``, attributes and all, in any case.

    The name must end there (``<thinker>`` is no ``<think>``); quoted attribute values may hold ``>``; a tag cut
    short (no ``>``) ends at the next ``<`` or at the end of the text, and still counts.
    """
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(
        rf"<(?P<close>/)?(?P<name>{alternatives})(?![\w.:-])"
        r"""(?P<attrs>(?:"[^"]*"|'[^']*'|[^'"<>])*)(?P<end>>?)""",
        re.IGNORECASE,
    )


def clean_result(text: str, *, reasoning_tags: Sequence[str] = REASONING_TAGS) -> str:
    """What a chat should see of ``text``: reasoning removed, status tags on their own ``⏳`` lines (SPEC §9).

    A section between an opening and a closing tag of a name in ``reasoning_tags`` (any case, any attributes,
    nested, each closed only by its own name) is removed; ``<name/>`` is an empty one. An opening tag never closed
    hides the rest of the text, and a closing tag with no opening one (the model's template opened the section)
    hides everything before it. ``<status>x</status>`` outside such sections becomes a line ``⏳ x``.
    Raises ``ValueError`` for a tag name that is not one.
    """
    visible = _strip_reasoning(text, reasoning_tag_names(reasoning_tags))
    parts: list[str] = []
    last = 0
    for match in _STATUS_TAG.finditer(visible):
        parts.append(visible[last : match.start()].strip())
        status = " ".join(match.group(1).split())
        if status:
            parts.append(f"⏳ {status}")
        last = match.end()
    parts.append(visible[last:].strip())
    return _BLANK_LINES.sub("\n\n", "\n".join(part for part in parts if part)).strip()


def _strip_reasoning(text: str, names: tuple[str, ...]) -> str:
    """``text`` without its reasoning sections, repeated until no tag of ``names`` is left (or nothing is shown)."""
    if not names:
        return text
    pattern = _reasoning_pattern(names)
    for _ in range(_MAX_PASSES):
        if pattern.search(text) is None:
            return text
        text = _strip_once(text, pattern)
    return text if pattern.search(text) is None else ""


def _strip_once(text: str, pattern: re.Pattern[str]) -> str:
    kept: list[str] = []
    depth: dict[str, int] = {}  # open sections by name: each name is closed only by its own tag
    last = 0
    for match in pattern.finditer(text):
        hidden = any(depth.values())
        if not hidden:
            kept.append(text[last : match.start()])
        last = match.end()
        name = match["name"].lower()
        if match["close"]:
            if depth.get(name):
                depth[name] -= 1
            elif not hidden:
                kept.clear()  # a closing tag that opened nothing: all before it was reasoning
        elif not (match["end"] and match["attrs"].rstrip().endswith("/")):
            depth[name] = depth.get(name, 0) + 1
    if not any(depth.values()):
        kept.append(text[last:])
    return "".join(kept)
