"""Log lines as gated writes them, captured in a test: formatted when logged, so they carry the ids bound there.

pytest's ``caplog`` keeps records and formats them later, out of the context they were logged in; the ids of
:mod:`kanmon.logcontext` are read when a line is formatted, so a test that checks them captures with this instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kanmon.gated.logs import LogFormatter


class LogLines(logging.Handler):
    """Every record that reaches it, as the JSON object gated would write (``message``, ``level``, the ids, extras)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(LogFormatter("json"))
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))

    def matching(self, text: str) -> list[dict[str, Any]]:
        """The entries whose message holds ``text``."""
        return [entry for entry in self.entries if text in entry["message"]]


@contextmanager
def log_lines(logger: str = "kanmon", level: int = logging.DEBUG) -> Iterator[LogLines]:
    """Capture what ``logger`` (and its children) log at ``level`` and above while the block runs."""
    handler, target = LogLines(), logging.getLogger(logger)
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(level)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
