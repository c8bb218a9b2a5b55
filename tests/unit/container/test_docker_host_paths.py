"""host_data_dir: which path the engine gets for a path gated checked in its own view of the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.container.docker import DockerRuntime


def test_without_a_host_data_dir_paths_go_to_the_engine_unchanged(tmp_path: Path) -> None:
    runtime = DockerRuntime(data_dir=tmp_path)
    assert runtime.host_path(tmp_path / "groups" / "support") == tmp_path / "groups" / "support"


def test_paths_under_the_data_dir_are_translated_to_the_host_data_dir(tmp_path: Path) -> None:
    runtime = DockerRuntime(data_dir=tmp_path / "data", host_data_dir=Path("/srv/kanmon"))
    (tmp_path / "data").mkdir()
    assert runtime.host_path(tmp_path / "data" / "groups" / "corp" / "eng") == Path("/srv/kanmon/groups/corp/eng")
    assert runtime.host_path(tmp_path / "data") == Path("/srv/kanmon")


def test_a_relative_data_dir_is_compared_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runtime = DockerRuntime(data_dir=Path("kanmon-data"), host_data_dir=Path("/srv/kanmon"))
    assert runtime.host_path(tmp_path / "kanmon-data" / "groups" / "g") == Path("/srv/kanmon/groups/g")


def test_paths_outside_the_data_dir_are_left_alone(tmp_path: Path) -> None:
    runtime = DockerRuntime(data_dir=tmp_path / "data", host_data_dir=Path("/srv/kanmon"))
    assert runtime.host_path(Path("/opt/shared/docs")) == Path("/opt/shared/docs")
    assert runtime.host_path(tmp_path / "data-other" / "x") == tmp_path / "data-other" / "x"
