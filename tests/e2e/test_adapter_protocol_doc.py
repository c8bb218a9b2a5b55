"""docs/adapter-protocol.md's minimal adapter, run as the doc gives it, against a real `gated run` set up by the doc's
own commands: a line typed into the adapter reaches the echo agent, and its reply is delivered to the adapter's
/send and printed. The code is taken from the doc, so the doc cannot rot."""

from __future__ import annotations

import os
import re
import selectors
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kanmon.gated.cli import cli
from kanmon.gateway.adapters import idempotency_key
from kanmon.store import Message, Store
from tests.gated_process import Gated

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "adapter-protocol.md"
SECRET = "adapter-protocol-doc-test-secret"


def blocks(language: str) -> list[str]:
    """The doc's fenced code blocks in ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def test_the_minimal_adapter_of_the_doc_gets_the_agents_reply(tmp_path: Path) -> None:
    (adapter_code,) = [block for block in blocks("python") if "console_adapter.py" in block]
    assert len(adapter_code.splitlines()) <= 50  # minimal
    script = tmp_path / "console_adapter.py"
    script.write_text(adapter_code)
    data = tmp_path / "data"
    env = {
        **os.environ,
        "KANMON_HTTP_CHANNEL_SECRET": SECRET,
        "KANMON_POLL_INTERVAL": "0.2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `gated agent echo`
    }
    # the doc's own set-up commands
    (setup,) = [block for block in blocks("bash") if "gated route add" in block]
    for line in setup.splitlines():
        if line.startswith(("gated group add", "gated route add")):
            result = CliRunner().invoke(cli, ["--data-dir", str(data), *shlex.split(line)[1:]], env=env)
            assert result.exit_code == 0, f"{line}: {result.output}"
    gated = Gated(data, tmp_path / "gated.log", args=["--http", "127.0.0.1:0"], env=env).start()
    adapter: subprocess.Popen[str] | None = None
    try:
        gated.wait_logged("gated running")
        found = re.search(r"http=(http://127\.0\.0\.1:\d+)", gated.logged())
        assert found, gated.logged()
        adapter = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "GATED_URL": found.group(1)},
        )
        assert adapter.stdin is not None and adapter.stdout is not None
        assert read_line(adapter, 30).startswith("registered at http://127.0.0.1:"), gated.logged()
        adapter.stdin.write("hello from the doc\n")
        adapter.stdin.flush()
        line = read_line(adapter, 60)
        assert line == "agent: echo: hello from the doc\n", f"{line!r}\n{gated.logged()[-3000:]}"
        # the adapter printed before it answered: gated marks the reply sent once the answer is in
        deadline = time.monotonic() + 30
        while [row.delivery_status for row in replies(data)] != ["sent"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if adapter is not None:
            adapter.kill()
            adapter.communicate(timeout=10)  # and closes its pipes
        assert gated.stop() == 0, gated.logged()
    (reply,) = replies(data)
    assert (reply.chat_jid, reply.delivery_status) == ("console:me", "sent")
    # the adapter's answer (the doc's adapter answers with the key it got), stored
    assert (reply.platform_message_id or "").endswith(idempotency_key("", reply).removeprefix("kanmon"))


def replies(data: Path) -> list[Message]:
    """The outbound rows of the store in ``data``."""
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    try:
        return [row for row in store.new_messages(0, limit=100) if row.direction == "out"]
    finally:
        store.close()


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The next line ``process`` prints; "" when it ended or printed nothing for ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                return process.stdout.readline()
    return ""
