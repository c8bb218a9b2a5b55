"""A chat JID is ``<platform>:<room>`` wherever one comes in (``kanmon.folders.jid_problem``): the CLI, tasks and
agent actions.

A newcomer stored ``telegram:``, ``:x``, ``telegram:4 2`` and ``TeleGram:5`` with ``gated send``: ``telegram:`` was
routed and answered, and its reply stayed pending for ever (no channel takes an empty room); ``:x`` made a metric
with an empty platform label. Other commands refused the same JIDs, each with its own ``":" in jid`` check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from kanmon.folders import PLATFORM_PATTERN, jid_problem
from kanmon.gated.cli import cli
from kanmon.store import NewMessage, Store, upgrade

BAD = [
    ":x",
    "telegram:",
    "telegram:4 2",
    "TeleGram:5",
    "bogus",
    "",
    "telegram:\x00",
    "web:\n",
    "x" * 30 + ":" + "1" * 500,
]
GOOD = ["telegram:42", "telegram:-1001234", "matrix:!room:example.org", "web:corp/eng", "local:corp", "daemon:audit"]


@pytest.mark.parametrize("jid", BAD)
def test_a_malformed_jid_has_a_problem_of_one_line(jid: str) -> None:
    problem = jid_problem(jid)
    assert problem is not None and "\n" not in problem and problem.startswith("invalid chat JID")


@pytest.mark.parametrize("jid", GOOD)
def test_the_jids_kanmon_makes_and_adapters_send_have_none(jid: str) -> None:
    assert jid_problem(jid) is None


@given(
    platform=st.from_regex(rf"\A{PLATFORM_PATTERN}\Z"),
    room=st.text(st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=100),
)
def test_any_platform_an_adapter_may_register_with_any_printable_room_is_a_jid(platform: str, room: str) -> None:
    assert jid_problem(f"{platform}:{room}") is None or any(char.isspace() for char in room)


@pytest.mark.parametrize("jid", ["TeleGram:5", "telegram:4 2", "telegram:"])
def test_a_chat_stored_before_the_rule_still_gets_its_replies(tmp_path: Path, jid: str) -> None:
    """The rule holds at kanmon's doors, not in the store: a chat an older version stored must still be answered (a
    reply, a reset notice, a task's message refused at the store's door would fail a run, a tick or every scheduler
    tick; an outside review)."""
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    try:
        stored = store.put_message(NewMessage(chat_jid=jid, content="an answer", direction="out"))
        assert stored.created and stored.message.chat_jid == jid
    finally:
        store.close()


@pytest.mark.parametrize("jid", [":x", "telegram:", "telegram:4 2", "TeleGram:5"])
@pytest.mark.parametrize(
    "command",
    [
        ["send", "{jid}", "hi"],
        ["replies", "{jid}"],
        ["dead", "--chat", "{jid}"],
        ["route", "test", "--chat-jid", "{jid}"],
        ["task", "add", "corp", "--every", "1h", "--prompt", "p", "--chat", "{jid}"],
    ],
)
def test_the_cli_refuses_a_malformed_jid_in_one_line(tmp_path: Path, jid: str, command: list[str]) -> None:
    args = [part.replace("{jid}", jid) for part in command]
    data = ["--data-dir", str(tmp_path / "data")]
    assert CliRunner().invoke(cli, [*data, "group", "add", "corp"], catch_exceptions=False).exit_code == 0
    result = CliRunner().invoke(cli, [*data, *args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "invalid chat JID" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
