"""``runtime.mount_allowlist``: roots groups may mount, each read-only or (``PATH:rw``) writable, from every source."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.container import AllowedMount
from kanmon.gated.config import ConfigError, Settings, load_settings


def load(data_dir: Path, yaml_text: str = "", environ: dict[str, str] | None = None) -> Settings:
    (data_dir / "kanmon.yaml").write_text(yaml_text)
    return load_settings(data_dir=str(data_dir), config_path=None, environ=environ or {}, overrides={})


def test_a_root_is_read_only_unless_written_path_rw_in_yaml_the_environment_and_flags(tmp_path: Path) -> None:
    expected = (
        AllowedMount(root=Path("/srv/a")),
        AllowedMount(root=Path("/srv/b"), writable=True),
        AllowedMount(root=Path("/srv/c")),
    )
    yaml_text = "runtime:\n  mount_allowlist:\n    - /srv/a\n    - /srv/b:rw\n    - /srv/c:ro\n"
    assert load(tmp_path, yaml_text).runtime.mount_allowlist == expected
    environ = {"KANMON_RUNTIME_MOUNT_ALLOWLIST": "/srv/a, /srv/b:rw, /srv/c:ro"}
    assert load(tmp_path, environ=environ).runtime.mount_allowlist == expected
    flags = load_settings(
        data_dir=str(tmp_path), config_path=None, environ={}, overrides={"runtime.mount_allowlist": "/srv/b:rw"}
    )
    assert flags.runtime.mount_allowlist == (AllowedMount(root=Path("/srv/b"), writable=True),)


def test_config_show_writes_it_back_the_same_way(tmp_path: Path) -> None:
    settings = load(tmp_path, "runtime:\n  mount_allowlist: [/srv/a, '/srv/b:rw']\n")
    shown = {entry.key: entry.value for entry in settings.describe()}
    assert shown["runtime.mount_allowlist"] == "/srv/a,/srv/b:rw"
    assert load(tmp_path, environ={"KANMON_RUNTIME_MOUNT_ALLOWLIST": shown["runtime.mount_allowlist"]}) == settings


@pytest.mark.parametrize("raw", ["relative", "/ok,relative:rw", "rw", ":rw"])
def test_a_root_that_is_not_absolute_is_one_line_naming_the_key(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, environ={"KANMON_RUNTIME_MOUNT_ALLOWLIST": raw})
    message = str(caught.value)
    assert message.startswith(
        "config: runtime.mount_allowlist (from KANMON_RUNTIME_MOUNT_ALLOWLIST): expected absolute"
    )
    assert "PATH:rw" in message and "\n" not in message
