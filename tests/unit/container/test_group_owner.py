"""The agent user owns its group folder, whoever created it (issue: Docker agents could not write their home)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.container.errors import InvalidRunSpec
from kanmon.container.mounts import agent_owner, prepare_group_dir

AGENT = (1000, 1000)
NOBODY = 65534

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")


def owner_of(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir other users can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="kanmon-owner-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def restored_folder(data_dir: Path) -> Path:
    """A group folder as a restore from backup leaves it: everything owned by root, with a symlink out."""
    group = data_dir / "groups" / "corp" / "eng"
    (group / "notes" / "deep").mkdir(parents=True)
    (group / "notes" / "deep" / "memory.md").write_text("remember")
    (group / "CLAUDE.md").write_text("hi")
    (data_dir / "outside.txt").write_text("not the agent's")
    (group / "link").symlink_to(data_dir / "outside.txt")
    for path in [group, *group.rglob("*"), data_dir / "outside.txt"]:
        os.chown(path, 0, 0, follow_symlinks=False)
    return group


@pytest.mark.parametrize(
    ("user", "owner"),
    [("1000:1000", (1000, 1000)), ("2000", (2000, None)), (" 1000:1001 ", (1000, 1001)), ("agent", None)],
)
def test_agent_owner_reads_numeric_docker_users_only(user: str, owner: tuple[int, int | None] | None) -> None:
    assert agent_owner(user) == owner


@as_root
def test_a_folder_created_by_root_is_given_to_the_agent_with_everything_in_it(data_dir: Path) -> None:
    group = restored_folder(data_dir)
    prepare_group_dir(data_dir, group, AGENT)
    inside = [group, *group.rglob("*")]
    assert {owner_of(path) for path in inside} == {AGENT}
    assert owner_of(data_dir / "outside.txt") == (0, 0), "the symlink inside was followed"


@as_root
def test_a_uid_only_user_keeps_the_group_of_each_file(data_dir: Path) -> None:
    group = restored_folder(data_dir)
    prepare_group_dir(data_dir, group, (2000, None))
    assert {owner_of(path) for path in [group, *group.rglob("*")]} == {(2000, 0)}


@as_root
def test_a_folder_the_agent_already_owns_is_not_walked(data_dir: Path) -> None:
    # the check before each run is one stat: a right owner at the top means nothing below is touched
    group = restored_folder(data_dir)
    os.chown(group, *AGENT)
    prepare_group_dir(data_dir, group, AGENT)
    assert owner_of(group / "CLAUDE.md") == (0, 0)


@as_root
def test_a_new_folder_is_created_for_the_agent(data_dir: Path) -> None:
    group = data_dir / "groups" / "fresh"
    prepare_group_dir(data_dir, group, AGENT)
    assert owner_of(group) == AGENT


def run_as_nobody(data_dir: Path, group: Path) -> str:
    """``prepare_group_dir`` in a forked process that gave up root: what it raised, or ``ok``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        answer = "ok"
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            prepare_group_dir(data_dir, group, AGENT)
        except BaseException as exc:
            answer = f"{type(exc).__name__} {exc}"
        finally:
            os.write(write_end, answer.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


@as_root
def test_without_root_a_folder_the_agent_cannot_write_is_one_clear_error(data_dir: Path) -> None:
    group = restored_folder(data_dir)
    group.chmod(0o755)
    answer = run_as_nobody(data_dir, group)
    assert answer.startswith("InvalidRunSpec")
    assert str(group) in answer and "0:0" in answer and "1000:1000" in answer and "chown -R 1000:1000" in answer
    assert owner_of(group) == (0, 0)


@as_root
def test_without_root_a_folder_the_agent_may_write_anyway_is_accepted(data_dir: Path) -> None:
    # the operator arranged it some other way (here: a group-writable folder of the agent's group)
    group = restored_folder(data_dir)
    os.chown(group, 0, 1000)
    group.chmod(0o775)
    assert run_as_nobody(data_dir, group) == "ok"


def test_a_folder_that_cannot_be_given_away_is_an_invalid_run_spec(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. root on an NFS export with root_squash: the chown itself fails
    group = data_dir / "groups" / "nfs"
    group.mkdir(parents=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    with pytest.raises(InvalidRunSpec, match="cannot give the group folder"):
        prepare_group_dir(data_dir, group, (4242, 4242))
