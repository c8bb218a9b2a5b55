"""`gated run` as a child process: start it, kill it, stop it, and read what it logged.

Used by the tests that need a real daemon (signals, SIGKILL, a database going away under it, two gateways on one
store). Every child logs to its own file, which a failing test prints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

GATED = [sys.executable, "-m", "kanmon"]


def reap(proc: subprocess.Popen[Any], readers: Iterable[threading.Thread] = (), timeout: float = 10.0) -> None:
    """End ``proc`` (killed if still alive), let the threads reading its pipes reach their end, then close its
    pipes: a test that leaves them to the garbage collector gets a ResourceWarning per pipe."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout)
    for reader in readers:
        reader.join(timeout)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class Gated:
    """One `gated … run` child; ``args`` go after ``run`` and ``env`` on top of the test's environment."""

    def __init__(
        self,
        data_dir: Path,
        log: Path,
        *,
        args: Sequence[str] = ("--no-http",),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.log = log
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> Gated:
        """Start (or restart) the child, appending to its log."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*GATED, "--data-dir", str(self.data_dir), "run", *self.args],
                stdout=log,
                stderr=log,
                env=self.env,
            )
        return self

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has ended."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, signum: int) -> None:
        """Send ``signum`` (SIGSTOP freezes the child, SIGCONT thaws it)."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no cleanup code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.kills += 1

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        """Wait for the child to end on its own; returns its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def logged(self) -> str:
        """Everything the child wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_logged(self, text: str, timeout: float = 30.0, *, count: int = 1) -> None:
        """Wait until the log holds ``text`` ``count`` times; fail with the log if the child ends or time runs out."""
        deadline = time.monotonic() + timeout
        while self.logged().count(text) < count:
            if not self.alive:
                raise AssertionError(f"gated ended ({self.returncode}) before logging {text!r}:\n{self.logged()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gated did not log {text!r} within {timeout:g}s:\n{self.logged()}")
            time.sleep(0.05)
