"""A store whose file system is (nearly) full makes gated say it is not ready (SPEC §14, hardening item 3).

The data dir lives on a tmpfs of a few MiB that the test fills with a ballast file: a real full file system, not a
simulated error. Mounting needs root (as on CI); elsewhere the test skips, loudly.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing
from tests.gated_process import Gated


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        service_missing("a tmpfs mount", done.stderr.decode().strip() or "mount failed")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_readyz_says_not_ready_while_the_stores_file_system_is_full(small_disk: Path, unused_tcp_port: int) -> None:
    base = f"http://127.0.0.1:{unused_tcp_port}"
    server = Gated(
        small_disk / "data",
        small_disk.parent / "gated.log",
        args=["--http", f"127.0.0.1:{unused_tcp_port}"],
        env={"KANMON_POLL_INTERVAL": "0.2", "KANMON_STORE_MIN_FREE_SPACE": "1m"},
    ).start()
    try:
        server.wait_logged("gated running")
        # logged before the gateway's start-up (reclaim, first tick): ready a moment later, not at once
        assert _ready_within(base, 10) == (True, [])
        ballast = small_disk / "ballast"
        # fill it up, leaving less than the configured minimum; unbuffered, so closing has nothing left to write
        with ballast.open("wb", buffering=0) as file:
            while True:
                try:
                    file.write(b"\0" * 65536)
                except OSError:
                    break
        ready, reasons = _ready(base)
        assert not ready and any("nearly full" in reason for reason in reasons), reasons
        assert server.alive
        ballast.unlink()
        assert _ready_within(base, 10) == (True, [])
    finally:
        server.stop()


def _ready_within(base: str, seconds: float) -> tuple[bool, list[str]]:
    """The first ready answer of /readyz within ``seconds``, else the last one."""
    deadline = time.monotonic() + seconds
    while (answer := _ready(base)) != (True, []) and time.monotonic() < deadline:
        time.sleep(0.2)
    return answer


def _ready(base: str) -> tuple[bool, list[str]]:
    answer = httpx.get(f"{base}/readyz", timeout=10)
    body = answer.json()
    return answer.status_code == 200, list(body["reasons"])
