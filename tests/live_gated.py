"""Helpers of the tests that talk to a real ``gated run`` child over HTTP and read its stderr.

A channel adapter's ``/send`` that misbehaves first (:class:`FakeAdapter`), the ``gated`` CLI (:func:`gated`), waiting
on a condition (:func:`wait_until`) and a child's stderr collected line by line (:class:`Output`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kanmon.gateway.adapters import AdapterDeliveryConfig

GATED = [sys.executable, "-m", "kanmon"]
QUICK_TRIES = AdapterDeliveryConfig().quick_tries


class FakeAdapter(ThreadingHTTPServer):
    """An adapter's ``/send``: the first attempt (3 quick tries) is answered 503 with the credentials echoed back."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SendHandler)
        self.received: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SendHandler(BaseHTTPRequestHandler):
    server: FakeAdapter

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        credentials = self.headers.get("Authorization", "").removeprefix("Bearer ")
        failing = len(self.server.received) < QUICK_TRIES
        self.server.received.append(body)
        answer = {"error": "overloaded", "you sent": credentials} if failing else {"ok": True, "id": "p-1"}
        data = json.dumps(answer).encode()
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_adapter() -> Iterator[FakeAdapter]:
    """A :class:`FakeAdapter` serving on a thread for the block."""
    server = FakeAdapter()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def gated(data_dir: Path, *args: str) -> str:
    """``gated --data-dir DIR ARGS…``, which must succeed; its standard output."""
    done = subprocess.run(
        [*GATED, "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> Any:
    """``condition()``'s first true value, polled; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


class Output:
    """Everything a process writes to stderr, collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.lines.extend(proc.stderr)

    def find(self, text: str) -> str | None:
        return next((line for line in list(self.lines) if text in line), None)

    def join(self) -> None:
        """Wait for the process' stderr to end, and close it."""
        self._thread.join(30)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
