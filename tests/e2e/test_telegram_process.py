"""The Telegram adapter as a process beside a real `gated run`: restarts lose and repeat nothing, a flood is answered
exactly once.

Both are child processes (`gated run`, `gated adapter telegram`), talking over HTTP; Telegram is the local fake Bot
API in a thread of the test. The adapter is killed with SIGKILL at random points and gated is stopped while updates
arrive: every update must be stored once and answered once, and Telegram must never be told an update is done
(the getUpdates offset past it) before gated has stored it. The one exception is the gap no Bot API client can close
(``sendMessage`` takes no idempotency key): a reply Telegram took in the instant before the SIGKILL, which the
adapter's sent journal therefore lacks, may be posted again; the test reads the journal at the kill and allows a
second copy of exactly those replies, and of nothing else.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kanmon.store import Group, Message, Store, upgrade
from tests.gated_process import Gated
from tests.gateway_harness import ECHO_COMMAND
from tests.ports import free_port
from tests.telegram_fake import TOKEN, FakeBotApi, message, running_fake, user

pytestmark = pytest.mark.slow
SECRET = "process-test-channel-secret"


def wait(condition: Callable[[], Any], what: str, timeout: float = 60.0, *, logs: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{logs()}")
        time.sleep(0.05)
    return result


class Adapter:
    """`gated adapter telegram` as a child process, logging to a file."""

    def __init__(self, data: Path, log: Path, env: dict[str, str], gated_url: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            "kanmon",
            "--data-dir",
            str(data),
            "adapter",
            "telegram",
            "--gated",
            gated_url,
        ]
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Adapter:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, env=self.env)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def logged(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class World:
    def __init__(self, tmp_path: Path, fake: FakeBotApi, log_level: str) -> None:
        self.fake = fake
        self.data = tmp_path / "data"
        self.data.mkdir()
        store = Store.open(f"sqlite:///{self.data / 'kanmon.db'}")
        upgrade(store.engine)
        store.add_group(Group(folder="corp", container_config={"runtime": "process", "command": ECHO_COMMAND}))
        store.add_route(seq=0, match="platform=telegram", target="corp")
        store.close()
        port = free_port()
        env = {
            **os.environ,
            "KANMON_HTTP_CHANNEL_SECRET": SECRET,
            "KANMON_POLL_INTERVAL": "0.2",
            "KANMON_DELIVERY_RETRY_BASE_DELAY": "0.1",
            "KANMON_TELEGRAM_BOT_TOKEN": TOKEN,
            "KANMON_TELEGRAM_API_URL": fake.url,
            "KANMON_TELEGRAM_LISTEN": f"127.0.0.1:{free_port()}",
            "KANMON_TELEGRAM_POLL_TIMEOUT": "1",
            "KANMON_LOG_LEVEL": log_level,
        }
        self.gated = Gated(self.data, tmp_path / "gated.log", args=["--http", f"127.0.0.1:{port}"], env=env)
        self.adapter = Adapter(self.data, tmp_path / "adapter.log", env, f"http://127.0.0.1:{port}")

    def logs(self) -> str:
        return f"--- gated:\n{self.gated.logged()[-4000:]}\n--- adapter:\n{self.adapter.logged()[-4000:]}"

    def inbound(self) -> list[Message]:
        return self.rows("in")

    def rows(self, direction: str) -> list[Message]:
        store = Store.open(f"sqlite:///{self.data / 'kanmon.db'}")
        try:
            return [row for row in store.new_messages(0, limit=1_000_000) if row.direction == direction]
        finally:
            store.close()

    def replies(self) -> collections.Counter[tuple[int, str]]:
        return collections.Counter((m["chat"]["id"], m["text"]) for m in self.fake.sent_messages())

    def unjournaled(self) -> set[tuple[int, str]]:
        """Replies Telegram took that the adapter's sent journal lacks: posted, but killed before it wrote them down.

        Read while the adapter is dead. This is the one gap the adapter documents and no Bot API client can close
        (``sendMessage`` has no idempotency key): gated's retry of such a reply may post it again.
        """
        journal = self.data / "adapters" / "telegram" / "sent.jsonl"
        lines = journal.read_text().splitlines() if journal.exists() else []
        journaled = {json.loads(line)["id"] for line in lines if line.strip()}
        return {
            (m["chat"]["id"], m["text"]) for m in self.fake.sent_messages() if str(m["message_id"]) not in journaled
        }

    def close(self) -> None:
        self.adapter.stop()
        self.gated.stop()


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    with running_fake() as fake:
        world = World(tmp_path, fake, getattr(request, "param", "INFO"))
        try:
            yield world
        finally:
            world.close()


def post(fake: FakeBotApi, chat_id: int, message_id: int, text: str) -> int:
    kind = "private" if chat_id > 0 else "supergroup"
    chat = fake.chats.get(chat_id) or fake.chat(chat_id, kind)
    return fake.add_update(message=message(chat, message_id, user(abs(chat_id) % 1000 + 1), text))


@pytest.mark.parametrize("world", ["DEBUG"], indirect=True)
def test_restarts_of_the_adapter_and_of_gated_lose_and_repeat_nothing(world: World) -> None:
    fake, texts = world.fake, []
    world.gated.start().wait_logged("gated running")
    world.adapter.start()
    for n in range(30):
        texts.append(f"first wave {n}")
        post(fake, 100 + n % 3, n + 1, texts[-1])
    wait(lambda: len(world.inbound()) >= 8, "some of the first wave to be stored", logs=world.logs)
    world.adapter.kill()  # mid-flow: some stored, some not, perhaps one stored whose offset was not saved
    in_the_gap = world.unjournaled()
    assert len(in_the_gap) <= 3, in_the_gap  # a kill lands in at most the sends in flight, never a backlog
    world.adapter.start()
    wait(lambda: len(world.inbound()) == 30, "the whole first wave", logs=world.logs)

    assert world.gated.stop() == 0  # gated goes away; updates keep arriving
    first_of_wave = 0
    for n in range(20):
        texts.append(f"second wave {n}")
        update_id = post(fake, -500 - n % 4, 1000 + n, texts[-1])
        first_of_wave = first_of_wave or update_id
    time.sleep(3)  # the adapter fetched them and keeps trying gated
    assert fake.confirmed <= first_of_wave, "an update was confirmed to Telegram before gated stored it"
    world.adapter.kill()  # while it retries
    world.adapter.start()
    time.sleep(1)
    world.gated.start()
    wait(lambda: len(world.inbound()) == 50, "the second wave after gated came back", logs=world.logs)
    wait(lambda: sum(world.replies().values()) >= 50, "50 replies", timeout=120, logs=world.logs)
    time.sleep(2)  # anything sent twice would show by now

    stored = world.inbound()
    assert sorted(row.content for row in stored) == sorted(texts)  # each stored once (ids are per chat)
    replies = world.replies()
    assert sorted(text for _, text in replies) == sorted(f"echo: {text}" for text in texts)
    answers = sorted(row.content for row in world.rows("out"))
    assert answers == sorted(f"echo: {text}" for text in texts)  # gated answered each once: a second post is not its
    twice = {key for key, count in replies.items() if count > 1}
    assert set(replies.values()) <= {1, 2}
    assert twice <= in_the_gap, twice - in_the_gap  # only a reply posted but not journaled when killed
    wait(lambda: fake.pending() == 0, "every update to be confirmed", logs=world.logs)
    for secret in (TOKEN, SECRET):  # the adapter logged at DEBUG, Bot API URLs (which carry the token) included
        assert secret not in world.adapter.logged() and secret not in world.gated.logged()
    assert "getUpdates" in world.adapter.logged()


def test_a_flood_of_500_messages_from_20_chats_is_answered_exactly_once(world: World) -> None:
    fake = world.fake
    world.gated.start().wait_logged("gated running")
    world.adapter.start()
    chats = [n + 1 for n in range(10)] + [-(1000 + n) for n in range(10)]
    expected: collections.Counter[tuple[int, str]] = collections.Counter()
    for n in range(25):
        for chat_id in chats:
            text = f"flood {chat_id} #{n}"
            post(fake, chat_id, n + 1, text)
            expected[(chat_id, f"echo: {text}")] += 1
    wait(lambda: sum(world.replies().values()) >= 500, "500 replies", timeout=240, logs=world.logs)
    time.sleep(2)
    assert world.replies() == expected  # every message answered, in its own chat, exactly once
    assert len(world.inbound()) == 500
    wait(lambda: fake.pending() == 0, "every update to be confirmed", logs=world.logs)
    assert "Traceback" not in world.adapter.logged() and "Traceback" not in world.gated.logged()
