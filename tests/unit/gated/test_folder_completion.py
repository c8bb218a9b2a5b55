"""<Tab> after a command that takes an existing group's folder offers the store's folders (kanmon.gated.completion).

``gated group show <Tab>`` used to offer nothing. Completion opens the store the command line names only when it
exists: a missing store offers nothing and is not created, and nothing is printed but the candidates.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from kanmon.gated.cli import cli
from kanmon.store import Group, Store, upgrade

GROUPS = ("corp", "corpus", "sales")
# FOLDER parameters that name a group not made yet: nothing to offer
NEW_FOLDERS = {("group", "add", "folder"), ("demo", "folder")}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("completion")
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    upgrade(store.engine)
    for folder in GROUPS:
        store.add_group(Group(folder=folder, container_config={"runtime": "process", "command": ["true"]}))
    store.close()
    return data


def folder_parameters(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Parameter]]:
    """Every parameter of the command tree that takes a group folder (named ``folder`` or shown as FOLDER)."""
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from folder_parameters(command, (*path, name))
            continue
        for param in command.params:
            if param.name in {"folder", "groups"} or getattr(param, "metavar", None) == "FOLDER":
                yield (*path, name), param


def complete(data_dir: Path, words: str) -> subprocess.CompletedProcess[str]:
    """What bash completion gets from the real CLI for the command line ``words`` (completing its last word)."""
    env = {**os.environ, "_GATED_COMPLETE": "bash_complete", "COMP_WORDS": f"gated --data-dir {data_dir} {words}"}
    env["COMP_CWORD"] = str(len(env["COMP_WORDS"].split(" ")) - 1)
    code = "from kanmon.gated.cli import main\nmain()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("group show c", ["corp", "corpus"]),
        ("group show ", list(GROUPS)),
        ("group set corpu", ["corpus"]),
        ("group show x", []),
        ("usage --group s", ["sales"]),
        ("apikey add --group ", list(GROUPS)),
    ],
)
def test_a_folder_is_completed_from_the_store(data_dir: Path, words: str, offered: list[str]) -> None:
    done = complete(data_dir, words)
    assert (done.stdout.split(), done.stderr) == ([f"plain,{folder}" for folder in offered], "")


def test_without_a_store_nothing_is_offered_printed_or_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    done = complete(missing, "group show ")
    assert (done.stdout.strip(), done.stderr, missing.exists()) == ("", "", False)


@pytest.mark.parametrize(
    ("path", "param"),
    [pytest.param(path, param, id=" ".join((*path, str(param.name)))) for path, param in folder_parameters()],
)
def test_every_parameter_naming_an_existing_group_completes_folders(
    data_dir: Path, path: tuple[str, ...], param: click.Parameter
) -> None:
    root = cli.make_context("gated", ["--data-dir", str(data_dir)], resilient_parsing=True)
    ctx = root
    for name in path:
        command = ctx.command.get_command(ctx, name) if isinstance(ctx.command, click.Group) else None
        assert command is not None
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    offered = [item.value for item in param.shell_complete(ctx, "corp")]
    expected = [] if (*path, param.name) in NEW_FOLDERS else ["corp", "corpus"]
    assert offered == expected
