"""A mount's container path: absolute, no '..', and never /, the agent's home, or /proc, /sys, /dev, /tmp or under
them, however it is spelled. Docker cleans the path it is given (collapsing slashes, dropping '.'); before,
``//dev/shm`` passed the check, which kept the two leading slashes POSIX allows, and Docker mounted over /dev/shm
(an outside review)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.container.errors import UnsafeMount
from kanmon.container.mounts import _RESERVED_TARGETS, AGENT_HOME, check_target


@pytest.mark.parametrize(
    "target", ["//proc", "//dev/shm", "//tmp", "//home/agent", "//", "///proc", "/./proc", "//sys/./x", "/dev//shm"]
)
def test_a_reserved_path_is_refused_however_it_is_spelled(target: str) -> None:
    with pytest.raises(UnsafeMount):
        check_target(target)


def docker_clean(target: str) -> str:
    """The path Docker mounts at (Go's filepath.Clean of a path without '..')."""
    return "/" + "/".join(part for part in target.split("/") if part not in ("", "."))


@given(st.text(alphabet="/.adeghimnoprstvxy", max_size=24))
def test_an_accepted_path_is_the_one_docker_mounts_at_and_is_under_nothing_reserved(target: str) -> None:
    try:
        normal = check_target(target)
    except UnsafeMount:
        return
    assert normal == docker_clean(target)
    assert normal not in {"/", AGENT_HOME}
    assert not any(normal == path or normal.startswith(path + "/") for path in _RESERVED_TARGETS)
