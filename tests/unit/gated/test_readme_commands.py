"""README's command table names every command ``gated`` has: a command added without a row fails here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from kanmon.gated.cli import cli

README = Path(__file__).resolve().parents[3] / "README.md"


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command under ``command``, as its words after ``gated``."""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))
    else:
        yield path


def test_every_command_has_a_row_in_the_readme_table() -> None:
    text = README.read_text()
    table = text[text.index("## Commands") : text.index("## Configuration")]
    rows = [line for line in table.splitlines() if line.startswith("| `gated")]

    def listed(path: tuple[str, ...]) -> bool:
        full, parent, name = " ".join(("gated", *path)), " ".join(("gated", *path[:-1])), path[-1]
        # `gated task add …`, or a row of `gated task …` that lists `resume ID` among its siblings
        return any(
            f"`{full}" in row or (row.startswith(f"| `{parent} ") and (f"`{name} " in row or f"`{name}`" in row))
            for row in rows
        )

    paths = list(command_paths(cli))
    assert len(paths) > 20, "the walk found too few commands"
    assert [" ".join(path) for path in paths if not listed(path)] == []
