"""``gated status`` through click: running batches, chats the impulse gate holds, chats waiting, correct counts.

``gated status`` is another process than ``gated run``: everything it shows comes from the store. A batch is running
when an in-flight ``session_log`` row covers it; a chat is held when replaying its waiting rows through the impulse
gate, each at the time it arrived (as gated's start-up recovery does), leaves a hold whose deadline is still ahead.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kanmon.gated.cli import cli
from kanmon.store import Dispatch, Group, NewMessage, Run, Store
from kanmon.store.lock import StoreLock


def put(store: Store, chat: str, content: str, verb: str = "message") -> int:
    new = NewMessage(chat_jid=chat, content=content, sender="alice", verb=verb)
    return store.put_message(new).message.seq


def section(output: str, heading: str) -> list[str]:
    """The heading line of ``heading`` and the indented lines under it."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{heading}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


@pytest.fixture
def status_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    data_dir = tmp_path / "data"

    def gated(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    gated("migrate")
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    store.add_group(Group(folder="corp"))
    store.add_route(seq=0, match="platform=telegram", target="corp")
    running = [put(store, "telegram:1", "hello"), put(store, "telegram:1", "are you there")]
    held = [put(store, "telegram:2", "👍", verb="react"), put(store, "telegram:2", "", verb="typing")]
    waiting = put(store, "telegram:3", "a question")
    routed = [*running, *held, waiting]
    store.record_dispatch([Dispatch(seq, "new", "corp", "", None) for seq in routed], max(routed))
    put(store, "telegram:4", "not read by the loop yet")
    store.start_run(
        Run(
            id="run-1",
            instance="elsewhere",
            group_folder="corp",
            topic="",
            chat_jid="telegram:1",
            runtime="process",
            status="running",
            started_at=dt.datetime.now(dt.UTC),
            first_seq=running[0],
            last_seq=running[-1],
            message_count=2,
        )
    )
    with StoreLock(store.engine, instance="elsewhere"):  # the gated that runs run-1 serves the store
        output = gated("status")
    store.close()
    return output


def test_status_counts_every_chat_that_has_messages(status_output: str) -> None:
    assert "chats 4 " in status_output


def test_a_running_batch_is_running_and_not_waiting(status_output: str) -> None:
    running = section(status_output, "running")
    assert running[0] == "running: 1"
    assert "corp" in running[1] and "run run-1" in running[1] and "2 messages" in running[1]
    assert not any("telegram:1" in line for line in section(status_output, "waiting"))


def test_a_chat_the_impulse_gate_holds_is_held_with_when_it_fires(status_output: str) -> None:
    held = section(status_output, "held")
    assert held[0].startswith("held: 1 chat")
    [line] = held[1:]
    assert line.split()[0] == "telegram:2" and "2 waiting" in line and "weight 0 of 100" in line
    fires = dt.datetime.fromisoformat(line.split("fires at ")[1].split()[0])
    assert dt.timedelta(minutes=4) < fires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=5)


def test_waiting_lists_the_other_chats_with_their_counts(status_output: str) -> None:
    waiting = section(status_output, "waiting")
    assert waiting[0].startswith("waiting: 2 chat")
    assert [line.split()[0] for line in waiting[1:]] == ["telegram:3", "telegram:4"]
    assert "1 waiting" in waiting[1]
    assert "not read by the loop yet" in waiting[2]
