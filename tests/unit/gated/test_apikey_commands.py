"""`gated apikey add|list|rm`: a key is printed once and stored only as its hash; bad input is one line, exit 2."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.store import Store
from kanmon.web.tokens import token_hash

Gated = Callable[..., Result]
KEY = re.compile(r"^  (kmk_([0-9a-f]{8})_[A-Za-z0-9_-]{43})$", re.MULTILINE)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)

    return run


def stored(data_dir: Path) -> Store:
    return Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")


def test_add_prints_the_key_once_and_stores_only_its_hash(gated: Gated, data_dir: Path) -> None:
    assert gated("group", "add", "corp").exit_code == 0
    assert gated("group", "add", "ops").exit_code == 0
    result = gated("apikey", "add", "--group", "corp", "--group", "ops", "--name", "laptop")
    assert result.exit_code == 0, result.output
    found = KEY.search(result.output)
    assert found, result.output
    key, key_id = found.groups()
    store = stored(data_dir)
    (saved,) = store.list_api_keys()
    store.close()
    assert (saved.id, saved.groups, saved.name) == (key_id, ("corp", "ops"), "laptop")
    assert saved.key_hash == token_hash(key)
    assert key not in (data_dir / "kanmon.db").read_bytes().decode("latin-1")
    listed = gated("apikey", "list")
    assert key_id in listed.output and "corp,ops" in listed.output and key not in listed.output


def test_rm_removes_the_key(gated: Gated) -> None:
    gated("group", "add", "corp")
    key_id = KEY.search(gated("apikey", "add", "--group", "corp").output).group(2)  # type: ignore[union-attr]
    assert gated("apikey", "rm", key_id).output.strip() == f"removed api key {key_id}"
    assert "no API keys" in gated("apikey", "list").output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("apikey", "add", "--group", "ghost"), "no group 'ghost'"),
        (("apikey", "add", "--group", "../x"), "invalid group folder"),
        (("apikey", "rm", "deadbeef"), "no API key 'deadbeef'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(gated: Gated, args: tuple[str, ...], fragment: str) -> None:
    gated("group", "add", "corp")
    result = gated(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output.lower() or fragment in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
