"""Token usage read from the answers that pass through the credential proxy (issue 19, "accounting for free").

The APIs say what a request cost in the answer itself: a JSON body's ``usage`` (Anthropic: ``input_tokens``,
``output_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``; OpenAI: ``prompt_tokens``,
``completion_tokens``), or, streamed as server-sent events, in the events that carry one (Anthropic's
``message_start`` and ``message_delta``, OpenAI's last chunk when ``stream_options.include_usage`` is set).
:class:`UsageReader` is fed the answer's bytes as they pass, never holds more than :data:`MAX_HELD` of them, and
keeps the largest count of each kind it sees (Anthropic's ``message_delta`` counts are cumulative, and repeat
``message_start``'s); an answer it cannot read counts nothing (never an error: the answer is the agent's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kanmon.container.events import Usage

__all__ = ["MAX_HELD", "TokenCounts", "UsageReader"]

# (the proxy that feeds it is kanmon.web.credproxy; the runner records a run's counts: kanmon.gateway.upstreams)

MAX_HELD = 1 << 20  # bytes of one JSON body or one event line kept to be read; a longer one is not counted

# the fields each API names its counts by, as kanmon's four kinds
_KINDS = {
    "input_tokens": "input", "prompt_tokens": "input",
    "output_tokens": "output", "completion_tokens": "output",
    "cache_read_input_tokens": "cache_read", "cache_creation_input_tokens": "cache_write",
}  # fmt: skip


@dataclass
class TokenCounts:
    """Tokens by kind: ``input``, ``output``, ``cache_read``, ``cache_write``."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def note(self, usage: Any) -> None:
        """Take one ``usage`` object of an answer: each count the largest seen (anything not a usage is ignored)."""
        if not isinstance(usage, dict):
            return
        for field, kind in _KINDS.items():
            value = usage.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value > getattr(self, kind):
                setattr(self, kind, value)

    def as_usage(self) -> Usage:
        """These counts as a run's reported usage (the answers state no cost: ``cost_usd`` 0)."""
        return Usage(
            input_tokens=self.input, output_tokens=self.output, cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
        )  # fmt: skip

    def __bool__(self) -> bool:
        return any((self.input, self.output, self.cache_read, self.cache_write))

    def __iadd__(self, other: TokenCounts) -> TokenCounts:
        """Add ``other``'s counts (another answer's) to these."""
        for kind in ("input", "output", "cache_read", "cache_write"):
            setattr(self, kind, getattr(self, kind) + getattr(other, kind))
        return self


class UsageReader:
    """Reads the usage out of one answer, fed chunk by chunk; ``event_stream``: a ``text/event-stream`` answer."""

    def __init__(self, *, event_stream: bool) -> None:
        self.counts = TokenCounts()
        self._events = event_stream
        self._held = bytearray()
        self._overflow = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the answer."""
        if self._overflow:
            if not self._events or b"\n" not in chunk:
                return
            chunk = chunk[chunk.index(b"\n") + 1 :]  # the long line is over: read the next ones
            self._overflow = False
        self._held += chunk
        if self._events:
            *lines, rest = bytes(self._held).split(b"\n")
            self._held = bytearray(rest)
            for line in lines:
                self._event_line(line)
        if len(self._held) > MAX_HELD:
            self._held.clear()
            self._overflow = True

    def finish(self) -> TokenCounts:
        """What the whole answer said it cost."""
        if self._events:
            self._event_line(bytes(self._held))
        elif not self._overflow:
            document = _json(bytes(self._held))
            if isinstance(document, dict):
                self.counts.note(document.get("usage"))
        self._held.clear()
        return self.counts

    def _event_line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        event = _json(line[5:].strip())
        if not isinstance(event, dict):
            return
        self.counts.note(event.get("usage"))  # Anthropic's message_delta, OpenAI's last chunk
        message = event.get("message")
        if isinstance(message, dict):
            self.counts.note(message.get("usage"))  # Anthropic's message_start


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
