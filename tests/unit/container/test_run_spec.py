"""RunSpec validation: ids, folder, timeouts, labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kanmon.container.base import RunSpec, folder_slug
from kanmon.container.errors import InvalidRunSpec


def spec(**overrides: Any) -> RunSpec:
    fields: dict[str, Any] = {"run_id": "r1", "instance": "prod", "folder": "support", "group_dir": Path("/d/g")}
    return RunSpec(**{**fields, "image": "agent:1", **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"timeout": 100, "idle_timeout": 90}, id="hard-less-than-idle-plus-30s"),
        pytest.param({"idle_timeout": 0}, id="zero-idle"),
        pytest.param({"timeout": 0, "idle_timeout": None}, id="zero-hard"),
        pytest.param({"run_id": "../x"}, id="bad-run-id"),
        pytest.param({"instance": ""}, id="empty-instance"),
        pytest.param({"folder": "../etc"}, id="bad-folder"),
        pytest.param({"image": None}, id="neither-image-nor-command"),
        pytest.param({"labels": {"kanmon.run": "forged"}}, id="reserved-label"),
        pytest.param({"user": "0:1000"}, id="root-uid"),
        pytest.param({"user": "00"}, id="root-uid-padded"),
        pytest.param({"user": "root:root"}, id="root-name"),
        pytest.param({"user": "1000 1000"}, id="malformed-user"),
    ],
)
def test_run_spec_rejects_inconsistent_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidRunSpec):
        spec(**overrides)


def test_run_spec_accepts_a_hard_timeout_of_exactly_idle_plus_30s() -> None:
    assert spec(idle_timeout=60, timeout=90).timeout == 90


def test_run_labels_carry_instance_run_folder_and_timers() -> None:
    labels = spec(labels={"team": "a"}, idle_timeout=None, timeout=5).run_labels()
    assert labels["kanmon.instance"] == "prod"
    assert labels["kanmon.run"] == "r1"
    assert labels["kanmon.folder"] == "support"
    assert labels["kanmon.idle_timeout"] == ""
    assert labels["team"] == "a"


@pytest.mark.parametrize(
    ("folder", "slug"), [("support", "support"), ("corp/eng", "corp-eng"), ("a" * 63 + "/b", "a" * 40)]
)
def test_folder_slug_makes_a_name_fragment(folder: str, slug: str) -> None:
    assert folder_slug(folder) == slug
