"""Keep gated's memory near what it uses: fewer malloc arenas for a daemon with a few busy threads.

glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and memory freed in one
is not reused by another: a long-running Python daemon with worker threads (gated's store and Docker threads) grows
by several MiB per arena for nothing. Two arenas are what the Python web servers recommend (``MALLOC_ARENA_MAX=2``);
measured here (``bench/rss.py``), it saves about 5 MiB of gated's RSS and costs nothing measurable in throughput.
An operator's own ``MALLOC_ARENA_MAX`` wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX = -8  # mallopt() parameter number, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas (before threads start); True if it took the setting."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, …): nothing to tune
        return False
