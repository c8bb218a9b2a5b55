"""uvicorn serving inside a process that owns its signals: gated (drain first, then stop), the adapters, the tests.

uvicorn's ``Server.serve`` installs SIGINT/SIGTERM handlers of its own; a process that decides itself what a signal
means (gated drains its runs first) runs :class:`EmbeddedServer` instead, which takes none, and stops it by setting
``should_exit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn

__all__ = ["EmbeddedServer"]


class EmbeddedServer(uvicorn.Server):
    """A :class:`uvicorn.Server` that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
