"""A web chat's topic is one rule everywhere: what `gated send`, `gated chat` and `gated task add` store for a web
chat, its page and API can open (issue 13's newcomer found `gated chat demo --topic 'bad topic!'` listed by the page,
whose every request for it then got 422). Other platforms' topics are their thread ids, taken as they come.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kanmon.errors import InvalidInput
from kanmon.folders import validate_topic
from kanmon.gated.cli import cli
from kanmon.store import Store
from kanmon.web.webchat import PostMessage

Gated = Callable[..., Result]
BAD_WEB_TOPICS = ["bad topic!", "../../x y", "-leading-dash", "x" * 65, "t\n1", "名前"]


@given(st.one_of(st.text(max_size=80), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,70}", fullmatch=True)))
def test_the_cli_takes_for_a_web_chat_exactly_the_topics_the_web_api_takes(topic: str) -> None:
    try:
        PostMessage(content="hi", topic=topic)
        web_takes = True
    except ValidationError:
        web_takes = False
    try:
        validate_topic("web:corp", topic)
        cli_takes = True
    except InvalidInput as exc:
        assert "\n" not in str(exc).replace(repr(topic), "")  # one line, whatever the topic holds
        cli_takes = False
    assert cli_takes == web_takes


@given(st.text(max_size=80))
def test_other_platforms_topics_are_taken_as_they_come(topic: str) -> None:
    assert validate_topic("matrix:!room:example.org", topic) == topic


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", "data", *args], catch_exceptions=False)

    assert run("group", "add", "corp").exit_code == 0
    return run


def stored(tmp_path: Path) -> tuple[int, int]:
    """(messages, tasks) in the store."""
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'kanmon.db'}")
    try:
        return len(store.new_messages(0, limit=1000)), len(store.list_tasks())
    finally:
        store.close()


@pytest.mark.parametrize("topic", BAD_WEB_TOPICS)
@pytest.mark.parametrize(
    "command",
    [
        ["send", "web:corp", "hi", "--topic"],
        ["chat", "corp", "--timeout", "0", "--topic"],
        ["task", "add", "corp", "--every", "1h", "--prompt", "report", "--topic"],
    ],
)
def test_a_topic_the_web_chat_could_not_open_is_one_line_and_stores_nothing(
    gated: Gated, tmp_path: Path, command: list[str], topic: str
) -> None:
    result = gated(*command, topic)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid topic" in lines[0] and "web chat web:corp" in lines[0], result.stderr
    assert stored(tmp_path) == (0, 0)


def test_good_topics_are_stored_for_the_web_and_any_thread_id_for_other_platforms(gated: Gated, tmp_path: Path) -> None:
    assert gated("send", "web:corp", "hi", "--topic", "t-1.x_2").exit_code == 0
    assert gated("send", "matrix:!room:example.org", "hi", "--topic", "$event/id:example.org").exit_code == 0
    assert gated("task", "add", "corp", "--every", "1h", "--prompt", "report", "--topic", "daily").exit_code == 0
    assert stored(tmp_path) == (2, 1)
