"""gated's malloc arena limit (kanmon.gated.memory): taken on glibc, and an operator's MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = "from kanmon.gated.memory import limit_malloc_arenas; print(limit_malloc_arenas())"


def _probe(**env: str) -> str:
    """What limit_malloc_arenas() says in a fresh interpreter (mallopt must run before threads start)."""
    environ = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run([sys.executable, "-c", _PROBE], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_glibc_takes_the_limit() -> None:
    assert _probe() == "True"


def test_an_operators_setting_wins() -> None:
    assert _probe(MALLOC_ARENA_MAX="4") == "False"
