"""`gated run`, `gated demo`, `gated chat` and `gated status` as a user runs them: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kanmon.container import echo_agent
from kanmon.store import Group, NewMessage, Store, upgrade
from tests.gated_process import GATED, reap
from tests.live_gated import wait_until


def gated(
    data_dir: Path, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATED, "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class LogReader:
    """The JSON log lines of a running gated (its stderr), collected by a thread as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def find(self, message_start: str) -> dict[str, Any] | None:
        return next((line for line in list(self.lines) if line["message"].startswith(message_start)), None)


def _get_json(url: str) -> Any:
    """The JSON body of a 200 answer, or None for any other status."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError:
        return None


def serving_at(logs: LogReader) -> str:
    """The ``http://host:port`` a gated started by :func:`daemon` serves on, once its start line says so."""
    ready = wait_until(lambda: logs.find("gated running"), "gated to start")
    return str(ready["message"].split("http=")[1].split()[0])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def daemon(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], LogReader]]:
    command = f"{sys.executable} -I {echo_agent.__file__}"
    added = gated(data_dir, "group", "add", "corp", "--runtime", "process", "--command", command)
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen(
        [*GATED, "--data-dir", str(data_dir), "run", "--http", "127.0.0.1:0", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KANMON_POLL_INTERVAL": "0.2"},
    )
    logs = LogReader(proc)
    try:
        yield proc, logs
    finally:
        reap(proc, [logs.thread])


def test_gated_run_answers_serves_health_and_logs_each_run_as_json(
    data_dir: Path, daemon: tuple[subprocess.Popen[str], LogReader]
) -> None:
    proc, logs = daemon
    url = serving_at(logs)
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        assert json.load(response) == {"ok": True}
    ready = wait_until(lambda: _get_json(f"{url}/readyz"), "/readyz to answer 200")
    assert ready == {"ready": True, "reasons": []}

    assert gated(data_dir, "send", "web:corp", "hello").returncode == 0
    finished = wait_until(lambda: logs.find("run finish"), "the run to finish")
    started = logs.find("run start")
    assert started is not None and started["lane"] == finished["lane"] == "corp"
    assert finished["result"] == "ok" and finished["run_id"] == started["run_id"]
    assert isinstance(finished["duration"], float)

    status = gated(data_dir, "status").stdout
    assert "ok       corp  1 in, 1 out" in status

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert logs.find("gated stopped") is not None


def test_gated_chat_talks_to_a_running_gated_through_the_store(
    data_dir: Path, daemon: tuple[subprocess.Popen[str], LogReader]
) -> None:
    _proc, logs = daemon
    wait_until(lambda: logs.find("gated running"), "gated to start")
    result = gated(data_dir, "chat", "corp", "--timeout", "30", stdin="first\nsecond\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["corp> echo: first", "corp> echo: second"]


def test_a_web_link_names_the_address_the_running_gated_serves_and_http_listen_once_it_stopped(
    data_dir: Path, daemon: tuple[subprocess.Popen[str], LogReader]
) -> None:
    # `run --http 127.0.0.1:0`: neither the port of http.listen (8080) nor one a command elsewhere could guess
    proc, logs = daemon
    url = serving_at(logs)
    link = gated(data_dir, "group", "web-token", "corp").stdout.splitlines()[-1]
    assert link.startswith(f"chat: {url}/chat/corp#token=") and not url.endswith(":8080")
    token = link.split("#token=")[1]
    request = urllib.request.Request(f"{url}/web/corp/topics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # the printed link works as printed
        assert response.status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    after = gated(data_dir, "group", "web-token", "corp").stdout.splitlines()[-1]
    assert after.startswith("chat: http://127.0.0.1:8080/chat/corp#token=")  # nobody serves: http.listen's


def test_gated_chat_without_a_running_gated_says_no_reply_came_and_fails(data_dir: Path) -> None:
    assert gated(data_dir, "group", "add", "corp").returncode == 0
    result = gated(data_dir, "chat", "corp", "--timeout", "0.5", stdin="anyone?\n")
    assert result.returncode == 1
    assert "no reply yet" in result.stdout


def test_gated_demo_answers_typed_lines_and_stops_cleanly_on_sigint(data_dir: Path) -> None:
    proc = subprocess.Popen(
        [*GATED, "--data-dir", str(data_dir), "demo", "--no-http"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("hello demo\n")
        proc.stdin.flush()
        lines = []
        while "demo> echo: hello demo" not in lines:
            line = proc.stdout.readline()
            assert line, f"demo ended early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        reap(proc)
    assert "group 'demo' (echo agent)" in lines[0]
    listed = gated(data_dir, "group", "list").stdout
    assert "demo" in listed and "runtime=process" in listed
    # a group of the operator's is answered by its own agent, and the demo says so (a newcomer's report: it said
    # "echo agent" and then ran the group's own failing command)
    assert gated(data_dir, "group", "add", "mine", "--runtime", "process", "--command", "true").returncode == 0
    assert (
        demo_banner(data_dir, "mine")
        == f"kanmon demo: group 'mine' (an existing group: its own agent), data in {data_dir}"
    )
    assert demo_banner(data_dir, "demo").startswith("kanmon demo: group 'demo' (echo agent)")  # an earlier demo's


def demo_banner(data_dir: Path, folder: str) -> str:
    """The first line ``gated demo --folder FOLDER`` prints; then it is stopped."""
    proc = subprocess.Popen(
        [*GATED, "--data-dir", str(data_dir), "demo", "--no-http", "--folder", folder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().rstrip("\n")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        reap(proc)
    return first


def test_a_second_gated_on_the_same_store_says_who_holds_it_and_exits_3(
    data_dir: Path, daemon: tuple[subprocess.Popen[str], LogReader]
) -> None:
    proc, logs = daemon
    wait_until(lambda: logs.find("gated running"), "gated to start")
    second = gated(data_dir, "run", "--no-http", timeout=30)
    assert second.returncode == 3
    [line] = second.stderr.strip().splitlines()
    running = logs.find("gated running")
    assert running is not None
    assert f"in use by gated {running['message'].split('instance=')[1].split()[0]}" in line
    assert f"pid {proc.pid}" in line
    assert proc.poll() is None  # the first one is unaffected


def test_sigterm_leaves_a_long_run_going_and_the_next_gated_delivers_its_reply_once(data_dir: Path) -> None:
    store_url = f"sqlite:///{data_dir / 'kanmon.db'}"
    data_dir.mkdir()
    store = Store.open(store_url)
    upgrade(store.engine)
    # the agent answers after 4 s; gated is told to stop after about 1 s and drains for only 0.5 s
    config = {"runtime": "process", "command": [sys.executable, "-I", echo_agent.__file__], "env": {"ECHO_DELAY": "4"}}
    store.add_group(Group(folder="slow", container_config=config))
    store.put_message(NewMessage(chat_jid="web:slow", content="take your time", sender="u"))
    store.close()
    env = {**os.environ, "KANMON_POLL_INTERVAL": "0.2", "KANMON_DRAIN_TIMEOUT": "0.5"}

    def serve() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*GATED, "--data-dir", str(data_dir), "run", "--no-http", "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    first = serve()
    logs = LogReader(first)
    try:
        wait_until(lambda: logs.find("run start"), "the run to start")
        time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        reap(first, [logs.thread])
    assert logs.find("stopped with 1 runs still going") is not None

    second = serve()
    second_logs = LogReader(second)
    try:
        finished = wait_until(lambda: second_logs.find("run finish"), "the reclaimed run to finish", timeout=60)
        started = logs.find("run start")
        assert started is not None and finished["run_id"] == started["run_id"]  # the same run, not a second one
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        reap(second, [second_logs.thread])
    store = Store.open(store_url)
    replies = [m.content for m in store.chat_messages("web:slow") if m.direction == "out"]
    store.close()
    assert replies == ["echo: take your time"]
