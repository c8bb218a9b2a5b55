"""From a group's settings to its run: mounts reach the spec, secrets are read from their sources at each start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kanmon.container import InvalidRunSpec, Mount
from kanmon.container.agent_secrets import MissingSecret, SecretSource
from kanmon.gateway.spec import RunDefaults, build_spec, run_secrets, secret_names
from kanmon.store import Group

DEFAULTS = RunDefaults(instance="test", data_dir=Path("/data"))


def spec_of(config: dict[str, Any]) -> Any:
    return build_spec(Group(folder="g", container_config=config), DEFAULTS, run_id="r1", stdin=b"{}")


def test_a_group_mounts_reach_its_run_spec() -> None:
    assert spec_of({}).mounts == ()
    mounts = [
        {"source": "/srv/a", "target": "/a", "read_only": True},
        {"source": "/srv/b", "target": "/b", "read_only": False},
    ]
    assert spec_of({"mounts": mounts}).mounts == (
        Mount(source=Path("/srv/a"), target="/a", read_only=True),
        Mount(source=Path("/srv/b"), target="/b", read_only=False),
    )
    # written by hand without a mode: read-only
    assert spec_of({"mounts": [{"source": "/srv/a", "target": "/a"}]}).mounts[0].read_only is True


@pytest.mark.parametrize(
    "mounts",
    [
        "/srv/a:/a",
        [{"source": "/srv/a"}],
        [{"source": 1, "target": "/a"}],
        [{"source": "/a", "target": "/a", "read_only": "no"}],
    ],
)
def test_malformed_mounts_fail_the_run_rather_than_guess(mounts: object) -> None:
    with pytest.raises(InvalidRunSpec, match=r"container_config\.mounts"):
        spec_of({"mounts": mounts})


def test_secret_values_never_enter_the_spec() -> None:
    spec = spec_of({"secrets": ["API_KEY"], "env": {"A": "1"}})
    assert dict(spec.env) == {"A": "1"}


@pytest.mark.parametrize("value", ["API_KEY", [1], [""], {"API_KEY": "x"}])
def test_malformed_secret_names_fail_the_run(value: object) -> None:
    with pytest.raises(InvalidRunSpec, match=r"container_config\.secrets"):
        secret_names(Group(folder="g", container_config={"secrets": value}))


async def test_run_secrets_reads_the_group_names_from_their_sources_now(tmp_path: Path) -> None:
    (tmp_path / "gh").write_text("gh-value\n")
    sources = {"API": SecretSource("env", "API_VALUE"), "GH": SecretSource("file", str(tmp_path / "gh"))}
    defaults = RunDefaults(instance="t", data_dir=tmp_path, secrets=sources, environ={"API_VALUE": "api-value"})
    group = Group(folder="g", container_config={"secrets": ["GH"]})
    assert await run_secrets(group, defaults) == {"GH": "gh-value"}
    (tmp_path / "gh").write_text("rotated")
    assert await run_secrets(group, defaults) == {"GH": "rotated"}
    assert await run_secrets(Group(folder="g"), defaults) == {}
    with pytest.raises(MissingSecret, match="secret GONE"):
        await run_secrets(Group(folder="g", container_config={"secrets": ["GONE"]}), defaults)
