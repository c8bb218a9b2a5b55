"""Keep gated's memory near what it uses: one malloc arena for a daemon whose threads mostly wait.

glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and memory freed in one
is not reused by another: a long-running Python daemon with worker threads (gated's store and Docker threads) grows
by several MiB per arena for nothing. The Python web servers recommend two (``MALLOC_ARENA_MAX=2``); gated's threads
run Python under one GIL, so they seldom allocate at the same moment and one arena costs no throughput. Measured with
``bench/rss.py`` (1,000 groups, 100,000 messages; stop 40): peak RSS 88.3 and 88.5 MiB with two arenas, 86.8 and
86.9 with one; ``bench/throughput.py`` with one arena against glibc's default gave 5,339 against 5,113 messages/s
batched, and one put per message 259 against 264 with two: within their run-to-run spread.
An operator's own ``MALLOC_ARENA_MAX`` wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX = -8  # mallopt() parameter number, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas (before threads start); True if it took the setting."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, …): nothing to tune
        return False
