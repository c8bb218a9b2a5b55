"""``gated --help`` and shell completion list every command without importing one (kanmon.gated.cli.LazyCommand).

Listing used to import every command module to read its summary (the daemon, FastAPI, the store): 2.1 s for
``gated --help`` and for each Tab press after ``gated``; 0.2 s now.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.shell_completion import CompletionItem
from click.testing import CliRunner

from kanmon.gated.cli import COMMANDS, cli

LISTING = """
import json, sys
from kanmon.gated.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(name for name in sys.modules if name.endswith("_commands") or name in {heavy!r})))
"""
HEAVY = ["fastapi", "uvicorn", "sqlalchemy", "docker", "kanmon.gateway"]
WHOLE = 10_000  # a summary length limit no first sentence reaches


def loaded(name: str) -> click.Command:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    return command


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_first_sentence_of_the_command_s_own_help(name: str) -> None:
    assert COMMANDS[name].summary == loaded(name).get_short_help_str(WHOLE), (
        f"cli.COMMANDS[{name!r}].summary differs from the command's help: copy its first sentence"
    )


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_help_lists_what_click_itself_would(width: int) -> None:
    ctx = click.Context(cli, terminal_width=width)
    for name in COMMANDS:
        loaded(name)
    ours, clicks = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    cli.format_commands(ctx, ours)
    click.Group.format_commands(cli, ctx, clicks)
    assert ours.getvalue() == clicks.getvalue()
    assert all(f"  {name} " in ours.getvalue() for name in COMMANDS)


def test_completion_offers_what_click_itself_would() -> None:
    ctx = click.Context(cli)
    expected = [(name, loaded(name).get_short_help_str()) for name in cli.list_commands(ctx) if name.startswith("r")]
    offered = cli.shell_complete(ctx, "r")
    assert [(item.value, item.help) for item in offered] == expected
    assert all(isinstance(item, CompletionItem) for item in offered)
    assert {item.value for item in cli.shell_complete(ctx, "--")} >= {"--data-dir", "--config", "--help"}


@pytest.mark.parametrize("argv", [["--help"], ["-h"]])
def test_listing_the_commands_imports_none_of_them(argv: list[str]) -> None:
    code = LISTING.format(argv=argv, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *help_lines, imported = done.stdout.strip().splitlines()
    assert json.loads(imported) == []
    assert all(any(line.strip().startswith(f"{name} ") for line in help_lines) for name in COMMANDS)


def test_completing_a_command_name_imports_none_of_them() -> None:
    code = (
        "import json, os, sys\n"
        "os.environ.update(_GATED_COMPLETE='bash_complete', COMP_WORDS='gated r', COMP_CWORD='1')\n"
        "from kanmon.gated.cli import main\n"
        "try:\n    main([])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.endswith('_commands') or n in {HEAVY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *offered, imported = done.stdout.strip().splitlines()
    assert json.loads(imported) == []
    assert offered == [f"plain,{name}" for name in sorted(COMMANDS) if name.startswith("r")]


@pytest.mark.parametrize(("typed", "meant"), [("statsu", "status"), ("grup", "group"), ("run-lg", "run-log")])
def test_a_mistyped_command_gets_the_closest_one_as_a_hint(typed: str, meant: str) -> None:
    # click suggests only among the commands it has loaded, and here that is none of them
    result = CliRunner().invoke(cli, [typed])
    assert result.exit_code == 2
    assert f"Error: No such command {typed!r}. Did you mean {meant!r}?" in result.output


def test_a_word_like_no_command_gets_no_hint() -> None:
    result = CliRunner().invoke(cli, ["xyzzy"])
    assert result.exit_code == 2
    assert "Error: No such command 'xyzzy'." in result.output and "Did you mean" not in result.output
