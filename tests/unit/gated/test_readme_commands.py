"""README's command table and ``gated``'s commands, compared both ways, options included: a command, an option or a
row added, renamed or removed on one side only fails here, with the row click would give it.

The table's format, which keeps it checkable (and merges mechanical): one row per runnable command, its first cell
one code span that starts with ``gated`` and the command's words, then its arguments and options. Every option the
command has (its longest name, ``--json``) appears in that cell, and no other; ``SETTINGS…`` stands for the agent
settings options ``gated group set`` takes (listed under "Group settings"). ``-h``/``--help`` is implied.

To see the rows click would give every command: ``.venv/bin/python tests/unit/gated/test_readme_commands.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from kanmon.gated.cli import cli

README = Path(__file__).resolve().parents[3] / "README.md"
SETTINGS = "SETTINGS…"
_ROW = re.compile(r"^\| `(gated [^`]*)` \| (.*) \|$")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def command_paths(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every runnable command under ``command``, as its words after ``gated``, with the command."""
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from command_paths(sub, (*path, name))
    else:
        yield path, command


def options(command: click.Command) -> set[str]:
    """The long names of ``command``'s options, ``--help`` aside."""
    return {max(p.opts, key=len) for p in command.params if isinstance(p, click.Option) and not p.hidden} - {"--help"}


def settings_options() -> set[str]:
    group_set = dict(command_paths(cli))[("group", "set")]
    return options(group_set)


def suggested_row(path: tuple[str, ...], command: click.Command) -> str:
    """The row click's view of ``command`` gives: its words, arguments and options, and its help's first line."""
    words = ["gated", *path]
    for param in command.params:
        if isinstance(param, click.Argument):
            words.append(param.human_readable_name)
        elif isinstance(param, click.Option) and not param.hidden and "--help" not in param.opts:
            name = max(param.opts, key=len)
            shown = name if param.is_flag else f"{name} {param.metavar or param.type.name.upper()}"
            words.append(shown if param.required else f"[{shown}]")
    summary = (command.help or "").strip().splitlines()[0] if command.help else ""
    return f"| `{' '.join(words).replace('|', chr(92) + '|')}` | {summary} |"


def readme_rows() -> dict[tuple[str, ...], tuple[str, str]]:
    """The table's rows by the command words they name: (first cell, what it does)."""
    text = README.read_text()
    table = text[text.index("## Commands") : text.index("## Configuration")]
    tree = {path: command for path, command in command_paths(cli)}
    groups = {path[:n] for path in tree for n in range(1, len(path))}
    rows: dict[tuple[str, ...], tuple[str, str]] = {}
    for line in table.splitlines():
        if not line.startswith("| `gated"):
            continue
        found = _ROW.match(line)
        assert found, f"not one code span and a description: {line}"
        cell = found[1].replace("\\|", "|")
        words = cell.split()[1:]
        path: tuple[str, ...] = ()
        for word in words:
            if (*path, word) in groups or (*path, word) in tree:
                path = (*path, word)
            else:
                break
        assert path not in rows, f"two rows for `gated {' '.join(path)}`"
        rows[path] = (cell, found[2].strip())
    return rows


def test_every_command_has_one_row_and_every_row_a_command() -> None:
    tree = dict(command_paths(cli))
    assert len(tree) > 40, "the walk found too few commands"
    rows = readme_rows()
    missing = [suggested_row(path, command) for path, command in tree.items() if path not in rows]
    assert missing == [], "commands without a row in README's table; add these rows:\n" + "\n".join(missing)
    stale = [cell for path, (cell, _) in rows.items() if path not in tree]
    assert stale == [], f"rows of commands gated does not have: {stale}"


def test_every_row_lists_exactly_its_commands_options() -> None:
    tree = dict(command_paths(cli))
    drifted = []
    for path, (cell, what) in readme_rows().items():
        if path not in tree:
            continue  # the test above says so
        written = set(_OPTION.findall(cell)) | (settings_options() if SETTINGS in cell else set())
        actual = options(tree[path])
        if written != actual or not what:
            drifted.append(
                f"gated {' '.join(path)}: README lists {sorted(written - actual)} that it lacks and lacks"
                f" {sorted(actual - written)}{'' if what else ', and says nothing about it'}; click's row:"
                f"\n  {suggested_row(path, tree[path])}"
            )
    assert drifted == [], "\n".join(drifted)


def test_the_global_options_are_documented() -> None:
    text = README.read_text()
    paragraph = text[text.index("Global options") : text.index("### Exit statuses")]
    assert set(_OPTION.findall(paragraph)) >= options(cli)


def test_the_group_settings_section_names_every_settings_option() -> None:
    text = README.read_text()
    section = text[text.index("### Group settings") : text.index("### Secrets")]
    assert settings_options() - set(_OPTION.findall(section)) == set()


if __name__ == "__main__":
    for path, command in command_paths(cli):
        print(suggested_row(path, command))
