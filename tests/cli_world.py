"""``gated`` in-process for CLI tests: a data directory's CLI with groups added, its SQLite store, result checks.

One set-up for the command tests (tasks, sender authorisation, usage, …) instead of a copy in each file::

    @pytest.fixture
    def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
        return gated_cli(tmp_path / "data", monkeypatch, "corp")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.gated.config import load_settings
from kanmon.gated.exits import Exit
from kanmon.gated.settings import Settings
from kanmon.store import Store

__all__ = ["Gated", "gated_cli", "ok", "one_line_error", "settings_of", "sqlite_store"]

Gated = Callable[..., Result]


def gated_cli(data_dir: Path, monkeypatch: pytest.MonkeyPatch, *groups: str) -> Gated:
    """``gated --data-dir DATA_DIR …`` run in-process, with no ``KANMON_*`` variable of the test's environment, after
    ``gated group add`` of each of ``groups`` (which creates and migrates the store)."""
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)

    for folder in groups:
        assert run("group", "add", folder).exit_code == 0
    return run


def settings_of(data_dir: Path, **environ: str) -> Settings:
    """The settings ``gated --data-dir DATA_DIR`` runs with when ``environ`` holds its only ``KANMON_*`` variables
    (no ``--config``, no other flag). Raises :class:`~kanmon.gated.config.ConfigError` as gated would."""
    return load_settings(data_dir=str(data_dir), config_path=None, environ=environ, overrides={})


@contextmanager
def sqlite_store(data_dir: Path) -> Iterator[Store]:
    """The embedded store of ``data_dir``, open for the block."""
    opened = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        yield opened
    finally:
        opened.close()


def ok(result: Result, code: int = Exit.OK) -> str:
    """The output of a command that must have exited ``code``: succeeded, or ``gated status``'s 4 (attention)."""
    assert result.exit_code == code, result.output
    return result.output


def one_line_error(result: Result, *fragments: str) -> None:
    """A refused command: exit 2, one line on standard error holding every fragment, no traceback."""
    assert result.exit_code == Exit.USAGE, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(fragment in lines[0] for fragment in fragments), result.stderr
