"""`gated adapter telegram` as a user runs it: what it needs is one line and exit 2, before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.telegram_fake import TOKEN, running_fake

pytestmark = pytest.mark.slow


def adapter(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("KANMON_")}
    return subprocess.run(
        [sys.executable, "-m", "kanmon", "--data-dir", str(data), "adapter", "telegram", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_without_a_token_or_a_channel_secret_it_says_which(tmp_path: Path) -> None:
    one_line(adapter(tmp_path, {"KANMON_HTTP_CHANNEL_SECRET": "s3cret-value"}), "telegram.bot_token is not set")
    one_line(adapter(tmp_path, {"KANMON_TELEGRAM_BOT_TOKEN": TOKEN}), "http.channel_secret is not set")
    one_line(
        adapter(tmp_path, {"KANMON_TELEGRAM_BOT_TOKEN": TOKEN}, "--gated", "ftp://x"),
        "telegram.gated_url (from command line)",
    )


def test_a_token_telegram_refuses_and_a_taken_port_are_one_line(tmp_path: Path) -> None:
    with running_fake() as fake, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = {
            "KANMON_HTTP_CHANNEL_SECRET": "s3cret-value",
            "KANMON_TELEGRAM_API_URL": fake.url,
            "KANMON_TELEGRAM_LISTEN": "127.0.0.1:0",
        }
        refused = adapter(tmp_path, {**env, "KANMON_TELEGRAM_BOT_TOKEN": "999:not-the-token"})
        one_line(refused, "telegram.bot_token: Telegram refused it")
        assert "not-the-token" not in refused.stderr
        port = f"127.0.0.1:{taken.getsockname()[1]}"
        one_line(
            adapter(tmp_path, {**env, "KANMON_TELEGRAM_BOT_TOKEN": TOKEN, "KANMON_TELEGRAM_LISTEN": port}),
            "cannot listen",
        )
