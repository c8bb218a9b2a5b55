"""`gated route test`: which layer and which route would take a message, and why, without writing anything."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.store import Store

Gated = Callable[..., Result]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    """Run `gated --data-dir DATA ARGS…` in-process with a clean KANMON_* environment."""
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)

    return run


@pytest.fixture
def configured(gated: Gated) -> Gated:
    """Groups corp and corp/eng; telegram chats belong to corp; typing events are dropped."""
    for args in (
        ("group", "add", "corp"),
        ("group", "add", "corp/eng"),
        ("route", "add", "--seq", "10", "--match", "platform=telegram", "--target", "corp"),
        ("route", "add", "--seq", "0", "--match", "verb=typing", "--target", "builtin:drop"),
    ):
        assert gated(*args).exit_code == 0
    return gated


def route_test(configured: Gated, *args: str) -> list[str]:
    """The output lines of a successful `gated route test ARGS…`."""
    result = configured("route", "test", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()


def store_rows(data_dir: Path) -> dict[str, object]:
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        counts = store.counts()
        chat = store.get_chat("telegram:1")
        return {"messages": counts["messages"], "routes": counts["routes"], "chat": chat}
    finally:
        store.close()


def test_route_test_shows_each_layer_and_the_route_that_takes_a_message(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "telegram:1", "--sender", "telegram:5", "--content", "hello @bob")
    assert lines[0].startswith("owner: corp")
    assert "sticky: passes" in lines[1] and "command: passes" in lines[2] and "prefix: passes" in lines[3]
    assert any("route #2" in line and "no match" in line for line in lines)
    assert any("route #1" in line and "matched" in line for line in lines)
    assert lines[-1].startswith("=> forward to folder corp") and "'hello @bob'" in lines[-1]


def test_route_test_names_the_prefix_layer_for_a_leading_child(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "telegram:1", "--content", "@eng do x")
    assert lines[-1].startswith("=> forward to folder corp/eng") and "prefix layer" in lines[-1]
    assert "'do x'" in lines[-1]


def test_route_test_names_the_command_layer_for_a_command(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "telegram:1", "--content", "/ping")
    assert lines[-1] == "=> consumed by the command layer: would run /ping for corp"


@pytest.mark.parametrize(
    ("content", "goes_on", "outcome"),
    [
        ("/new @eng hi", "'@eng hi'", "=> forward to folder corp/eng, topic '' by the prefix layer"),
        ("/new #t hi", "'#t hi'", "=> forward to folder corp, topic '#t' by the routing layer"),
        ("/new hello there", "'hello there'", "=> forward to folder corp, topic '' by the routing layer"),
    ],
)
def test_route_test_follows_the_text_after_new_where_the_loop_routes_it(
    configured: Gated, content: str, goes_on: str, outcome: str
) -> None:
    """The loop runs ``/new`` and then routes its text as the message's own (prefix and routing layers); the dry run
    runs no command, but the text's route is the command's arguments', so it says both."""
    lines = route_test(configured, "--chat-jid", "telegram:1", "--content", content)
    assert lines[2] == f"command: would run /new for corp; then the message goes on as {goes_on}", lines
    assert lines[-1].startswith(outcome), lines


def test_route_test_of_new_alone_is_consumed(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "telegram:1", "--content", "/new #t")
    assert lines[-1] == "=> consumed by the command layer: would run /new for corp"


def test_route_test_names_the_sticky_layer_for_a_sticky_message(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "telegram:1", "--content", "@corp/eng")
    assert "sticky layer" in lines[-1] and "sticky_group=corp/eng" in lines[-1]


def test_route_test_follows_the_verb(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "telegram:1", "--verb", "typing")
    assert lines[-1].startswith("=> dropped by the routing layer (route #2")


def test_route_test_says_when_no_group_owns_the_chat(configured: Gated) -> None:
    lines = route_test(configured, "--chat-jid", "discord:1", "--content", "hi")
    assert lines[0].startswith("owner: none")
    assert lines[-1].startswith("=> unowned")


def test_route_test_writes_nothing(configured: Gated, data_dir: Path) -> None:
    # Given a configured store
    before = store_rows(data_dir)
    # When every kind of message is tested, including ones that would change state if they were real
    for content in ("/new reset me", "@corp/eng", "#t", "/approve discord:9 corp", "hello"):
        route_test(configured, "--chat-jid", "telegram:1", "--content", content)
    # Then no message, route or chat was written
    assert store_rows(data_dir) == before


def test_route_test_refuses_a_malformed_jid_in_one_line(configured: Gated) -> None:
    result = configured("route", "test", "--chat-jid", "nojid")
    assert result.exit_code == 2
    assert "invalid chat JID" in result.output and "Traceback" not in result.output


def test_the_readmes_own_folder_per_telegram_user_recipe_works_as_written(gated: Gated) -> None:
    """The README's Telegram recipe, run as written: its `{sender}` route must be tried before the route to
    `support` (a newcomer: both had seq 0, ties go by id, so the per-user route was never reached)."""
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    first = re.search(r"^gated route add [^\n`]*--target support$", readme, re.MULTILINE)
    per_user = re.search(r"`(gated route add [^`]*users/\{sender\}[^`]*)`", readme)
    assert first is not None and per_user is not None, "the recipe is no longer in the README"
    assert gated("group", "add", "support").exit_code == 0
    assert gated("group", "add", "users/telegram-42").exit_code == 0
    for line in (first.group(0), per_user.group(1)):
        result = gated(*shlex.split(line)[1:])
        assert result.exit_code == 0, result.output
    own = gated("route", "test", "--chat-jid", "telegram:42", "--sender", "telegram:42").output.splitlines()
    other = gated("route", "test", "--chat-jid", "telegram:7", "--sender", "telegram:7").output.splitlines()
    assert own[-1].startswith("=> forward to folder users/telegram-42"), own
    assert other[-1].startswith("=> forward to folder support"), other
