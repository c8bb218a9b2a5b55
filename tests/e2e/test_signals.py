"""Signals always stop `gated run`, whatever became of the terminal or pipe its output went to (hardening item 10)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GATED = [sys.executable, "-m", "kanmon"]


def started_gated(tmp_path: Path) -> subprocess.Popen[bytes]:
    """`gated run --no-http` with its stdout and stderr on one pipe, once it has said it is running."""
    proc = subprocess.Popen(
        [*GATED, "--data-dir", str(tmp_path / "data"), "run", "--no-http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = b""
    while b"gated running" not in line:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            pytest.fail("gated did not start")
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_gated_after_whoever_read_its_output_has_gone(tmp_path: Path, signum: int) -> None:
    """`gated run 2>&1 | tee log`, then Ctrl-C: tee dies first, and every write to the pipe fails from then on."""
    proc = started_gated(tmp_path)
    try:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone: gated's next write to stderr fails with EPIPE
        proc.send_signal(signum)
        assert proc.wait(30) is not None  # stopped, not hung on its own signal handler
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"{signal.Signals(signum).name} did not stop gated once its output pipe was closed")


@pytest.mark.parametrize(
    ("signum", "again"), [(signal.SIGINT, "Ctrl-C again"), (signal.SIGTERM, "SIGTERM again")], ids=["SIGINT", "SIGTERM"]
)
def test_the_stopping_line_names_the_signal_that_stops_now(tmp_path: Path, signum: int, again: str) -> None:
    """A SIGTERM comes from systemd, docker stop or kill, not a keyboard: the line does not tell it to press Ctrl-C."""
    proc = started_gated(tmp_path)
    try:
        assert proc.stdout is not None
        proc.send_signal(signum)
        rest = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert f"{again} stops now" in rest, rest
