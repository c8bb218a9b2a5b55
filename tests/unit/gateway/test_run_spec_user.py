"""Which user a group's agent runs as: the daemon's default, or the group's own ``container_config.user``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kanmon.container import InvalidRunSpec
from kanmon.gateway.spec import RunDefaults, build_spec
from kanmon.store import Group

DEFAULTS = RunDefaults(instance="test", data_dir=Path("/data"), user="1000:1000")


def user_of(config: dict[str, Any]) -> str:
    return build_spec(Group(folder="g", container_config=config), DEFAULTS, run_id="r1", stdin=b"{}").user


def test_a_group_runs_as_the_default_user_unless_it_names_its_own() -> None:
    assert user_of({}) == "1000:1000"
    assert user_of({"user": "2000:2000"}) == "2000:2000"


@pytest.mark.parametrize("user", ["0", "0:0", "root", "root:1000", "", 1000, " 1000"])
def test_a_group_user_that_is_root_or_malformed_is_refused(user: object) -> None:
    with pytest.raises(InvalidRunSpec, match="user"):
        user_of({"user": user})
