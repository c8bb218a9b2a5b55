"""``gated hooks list`` (issue 16 item 6): what gated run would load, and a module that cannot be loaded as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kanmon.gated.cli import cli

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples"


def test_hooks_list_shows_the_configured_plugins_and_their_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    env = {"KANMON_HOOKS_MODULES": "audit_hooks", "KANMON_HOOKS_ENTRY_POINTS": "false"}
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "hooks", "list"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "hooks.timeout: 2s; entry points: off",
        "audit_hooks\thooks.modules\tdead_letter, delivery_failed, message_routed, run_finished, run_starting, "
        "session_reset, task_fired",
    ]


def test_hooks_list_without_plugins(tmp_path: Path) -> None:
    env = {"KANMON_HOOKS_ENTRY_POINTS": "false"}
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "hooks", "list"], env=env)
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "no hook plugins")


def test_a_module_that_cannot_be_loaded_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"KANMON_HOOKS_MODULES": "no_such_hooks_module"}
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "hooks", "list"], env=env)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "cannot import no_such_hooks_module" in result.output
