"""scripts/venv.sh (and so scripts/demo.sh) installs only when needed (issue 18 item 2): once for a new .venv, again
when pyproject.toml, the extra or the Python changes, never just because it ran again.

The script runs for real in a copy of the repository's layout whose ``.venv/bin/python`` is a stand-in that records
each ``pip install`` (no network, no real install).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "venv.sh"
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = -VV ]; then echo "Python ${FAKE_VERSION:-3.11.7}"; exit 0; fi
echo "$*" >> "$(dirname "$0")/../../installs"
touch "$(dirname "$0")/gated"; chmod +x "$(dirname "$0")/gated"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "venv.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "kanmon"\n')
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def installs(repo: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run venv.sh with ``args``; every install it has made so far."""
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "venv.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    log = repo / "installs"
    return log.read_text().splitlines() if log.exists() else []


def test_it_installs_once_and_again_only_when_pyproject_changes(repo: Path) -> None:
    assert len(installs(repo)) == 1
    assert len(installs(repo)) == 1, "installed again with nothing changed"
    (repo / "pyproject.toml").write_text('[project]\nname = "kanmon"\ndependencies = ["click"]\n')
    assert len(installs(repo)) == 2
    assert len(installs(repo)) == 2


def test_the_test_extra_serves_a_plain_install_but_not_the_other_way(repo: Path) -> None:
    assert installs(repo) == ["-m pip install -q --disable-pip-version-check -e ."]
    assert installs(repo, "test")[-1] == "-m pip install -q --disable-pip-version-check -e .[test]"
    assert len(installs(repo)) == 2, "the test extra's install already has everything a plain one needs"
    assert len(installs(repo, "test")) == 2


def test_a_new_python_or_kanmon_reinstall_installs_again(repo: Path) -> None:
    assert len(installs(repo)) == 1
    assert len(installs(repo, env={"FAKE_VERSION": "3.12.1"})) == 2
    assert len(installs(repo, env={"FAKE_VERSION": "3.12.1", "KANMON_REINSTALL": "1"})) == 3
