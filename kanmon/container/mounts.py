"""Which host paths a run may see: the group folder, and extra mounts from the allowlist, never through symlinks;
and who owns the group folder: the agent's user, whoever created the folder.

Blocking file-system work; the runtimes call these functions off the event loop.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kanmon.container.base import AllowedMount, Mount
from kanmon.container.errors import InvalidRunSpec, UnsafeMount

__all__ = [
    "AGENT_HOME",
    "BoundMount",
    "Owner",
    "agent_owner",
    "bind_mount",
    "check_no_escaping_symlinks",
    "check_target",
    "directory_identity",
    "give_to_agent",
    "mounted_identity",
    "prepare_group_dir",
    "resolve_mounts",
]

logger = logging.getLogger(__name__)

AGENT_HOME = "/home/agent"

#: A host owner: (uid, gid), the gid None when only a uid is known (the file's group is then left alone).
Owner = tuple[int, int | None]
#: A directory's identity on the host: ``(st_dev, st_ino)``.
Identity = tuple[int, int]
_NUMERIC_USER = re.compile(r"(\d+)(?::(\d+))?")


@dataclass(frozen=True, slots=True)
class BoundMount:
    """A checked mount: a resolved host path, where it appears, and whether it is read-only."""

    source: Path
    target: str
    read_only: bool


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def check_no_escaping_symlinks(top: Path, root: Path) -> None:
    """Raise :class:`UnsafeMount` if ``top`` or any path under it is a symlink resolving outside ``root``.

    ``root`` must already be resolved. The walk never follows symlinks, so a loop cannot trap it.
    """
    if top.is_symlink() and not _inside(top.resolve(), root):
        raise UnsafeMount(str(top), f"it is a symlink to {top.resolve()}, outside {root}")
    for directory, dirnames, filenames in os.walk(top, followlinks=False):
        for name in (*dirnames, *filenames):
            path = Path(directory, name)
            if path.is_symlink() and not _inside(path.resolve(), root):
                raise UnsafeMount(str(path), f"it is a symlink to {path.resolve()}, outside {root}")


def prepare_group_dir(data_dir: Path, group_dir: Path, owner: Owner | None = None) -> Path:
    """Create the group folder if missing, check it, and give it to ``owner``; return its resolved path.

    Refuses a folder that is, or passes through, a symlink (:class:`UnsafeMount`): what is mounted is always the
    real folder. Symlinks the agent makes inside it are its own business and never disable the group (a
    ``python -m venv`` makes ``bin/python -> /usr/bin/python3``): in a container they resolve in the container's
    view, and kanmon's own reads of the folder never follow one (:mod:`kanmon.gateway.folder_files`, ``give_to_agent``).
    With ``owner`` (the agent's host uid and gid, see :func:`agent_owner`), the folder is
    made the agent's by :func:`give_to_agent`, which raises :class:`InvalidRunSpec` when that cannot be done.
    """
    root = data_dir.resolve()
    if not group_dir.is_absolute():
        raise UnsafeMount(str(group_dir), "the group folder must be an absolute path")
    if not _inside(group_dir.resolve(), root):
        raise UnsafeMount(str(group_dir), f"it resolves to {group_dir.resolve()}, outside the data dir {root}")
    _check_real_directories(data_dir, group_dir)
    if not group_dir.exists():
        group_dir.mkdir(parents=True, mode=0o755)
        logger.info("created group folder %s", group_dir)
        _check_real_directories(data_dir, group_dir)  # nothing was swapped in while it was made
    resolved = group_dir.resolve()
    if owner is not None:
        give_to_agent(resolved, owner)
    return resolved


def _check_real_directories(data_dir: Path, group_dir: Path) -> None:
    """Raise :class:`UnsafeMount` when ``group_dir``, or a folder between it and ``data_dir``, is a symlink.

    A nested group's folder is an entry of its parent's folder, which the parent's agent may change: replaced by
    ``ln -s ../.. eng``, the child's run would mount (and give the agent user) the whole data dir, or another group's
    folder. Only real directories are mounted, wherever a symlink would lead (SPEC §9). The data dir itself may be a
    symlink: the operator chose it.
    """
    for base in (data_dir, data_dir.resolve()):
        if group_dir.is_relative_to(base):
            below = group_dir.relative_to(base).parts
            break
    else:
        raise UnsafeMount(str(group_dir), f"it is not a folder under the data dir {data_dir}")
    path = base
    for part in below:
        path = path / part
        if path.is_symlink():
            raise UnsafeMount(
                str(path), f"it is a symlink (to {path.readlink()}): group folders and the folders above them are "
                "mounted only when they are real directories"
            )  # fmt: skip


def directory_identity(path: Path) -> Identity:
    """``(st_dev, st_ino)`` of ``path``, a real directory (a symlink is not followed but refused: :class:`UnsafeMount`).

    Taken right after :func:`prepare_group_dir` checked the folder, to compare with what the engine mounted
    (:func:`mounted_identity`): the check and the mount are apart, and a nested folder can be swapped meanwhile.
    """
    status = path.lstat()
    if not stat.S_ISDIR(status.st_mode):
        raise UnsafeMount(str(path), "it is no longer a real directory (replaced while the run started)")
    return status.st_dev, status.st_ino


def mounted_identity(pid: int, container_id: str, target: str) -> Identity | None:
    """``(st_dev, st_ino)`` of what ``target`` is inside the container whose process is ``pid``, or None when this
    process cannot see it: gated in a container of its own (another PID namespace), a process already gone, or a
    ``pid`` that is not that container's (its ``/proc/PID/cgroup`` does not name ``container_id``)."""
    try:
        if container_id not in Path(f"/proc/{pid}/cgroup").read_text():
            return None
        status = Path(f"/proc/{pid}/root{target}").stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def agent_owner(user: str) -> Owner | None:
    """The host owner of a container ``user``: ``1000:1000`` → (1000, 1000), ``1000`` → (1000, None).

    None for a user given by name (``agent``, ``1000:staff``): only the image knows its number, so kanmon cannot
    tell whether the folder is the agent's and leaves its ownership alone.
    """
    match = _NUMERIC_USER.fullmatch(user.strip())
    if match is None:
        return None
    return int(match.group(1)), None if match.group(2) is None else int(match.group(2))


def give_to_agent(folder: Path, owner: Owner) -> None:
    """Make ``owner`` own ``folder`` and, when it did not own the folder, everything in it.

    Cheap when nothing is wrong: one ``stat`` of the folder. A folder of someone else's (made by root with
    ``gated group add`` or ``mkdir``, restored from a backup, or left by a former agent user) is given away with
    ``chown -R``, walked with :func:`os.fwalk` so that no symlink is followed (a symlink itself changes owner, its
    target never), not even one swapped in during the walk.

    Only root can give files away. Any other kanmon accepts a folder the agent may write anyway by its mode bits
    (world-writable, or group-writable for the agent's group) and raises :class:`InvalidRunSpec` otherwise, saying
    which command fixes it, rather than letting the agent fail on its first write. Also :class:`InvalidRunSpec`
    when the ``chown`` itself fails (e.g. root squashed on an NFS export).
    """
    uid, gid = owner
    status = folder.stat()
    if status.st_uid == uid and gid in (None, status.st_gid):
        return
    user = str(uid) if gid is None else f"{uid}:{gid}"
    found = f"{status.st_uid}:{status.st_gid}"
    if os.geteuid() != 0:
        if _agent_may_write(status, uid, gid):
            logger.debug("group folder %s belongs to %s, but its mode lets the agent %s write", folder, found, user)
            return
        raise InvalidRunSpec(
            f"the group folder {folder} belongs to {found} and the agent runs as {user}, who cannot write it; kanmon "
            f"(uid {os.geteuid()}) cannot give it away: run `chown -R {user} {folder}` as root"
        )
    try:
        _chown_tree(folder, uid, -1 if gid is None else gid)
    except OSError as exc:
        raise InvalidRunSpec(f"cannot give the group folder {folder} to the agent user {user}: {exc}") from exc
    logger.info(
        "group folder %s belonged to %s: gave it and everything in it to the agent user %s", folder, found, user
    )


def _agent_may_write(status: os.stat_result, uid: int, gid: int | None) -> bool:
    mode = status.st_mode
    if status.st_uid == uid:
        return mode & 0o300 == 0o300
    if gid is not None and status.st_gid == gid and mode & 0o030 == 0o030:
        return True
    return mode & 0o003 == 0o003


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.chown(top, uid, gid, follow_symlinks=False)
    for _, dirnames, filenames, dir_fd in os.fwalk(top, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def resolve_mounts(mounts: Sequence[Mount], allowlist: Sequence[AllowedMount]) -> list[BoundMount]:
    """Check extra mounts against the allowlist: each must exist under an allowed root; writable only if allowed.

    At run time a writable mount under a root the allowlist has since made read-only is mounted read-only (with a
    warning), not refused: the run loses a permission rather than its start.
    """
    return [bind_mount(mount, allowlist) for mount in mounts]


def bind_mount(mount: Mount, allowlist: Sequence[AllowedMount], *, strict: bool = False) -> BoundMount:
    """Check one mount (see :func:`resolve_mounts`); ``strict`` refuses a writable one under a read-only root.

    Raises :class:`UnsafeMount` when the host path is not under an allowed root, does not exist, or is (or holds) a
    symlink leading out of its root, and when the container path is not one a mount may take.
    """
    target = check_target(mount.target)
    source = mount.source.resolve()
    entry = next((a for a in allowlist if _inside(source, a.root.resolve())), None)
    if entry is None:
        roots = ", ".join(str(a.root) for a in allowlist) or "none configured"
        raise UnsafeMount(str(mount.source), f"it is not under any allowed root (runtime.mount_allowlist: {roots})")
    if not source.exists():
        raise UnsafeMount(str(mount.source), "it does not exist")
    check_no_escaping_symlinks(source, entry.root.resolve())
    read_only = mount.read_only or not entry.writable
    if read_only and not mount.read_only:
        if strict:
            why = f"its allowed root {entry.root} is read-only (write {entry.root}:rw in runtime.mount_allowlist)"
            raise UnsafeMount(str(mount.source), f"it cannot be writable: {why}")
        logger.warning("mount %s asked to be writable but its allowlist entry is read-only", mount.source)
    return BoundMount(source, target, read_only)


#: Container paths no mount may take or go under: the kernel's and the runtime's own.
_RESERVED_TARGETS = ("/proc", "/sys", "/dev", "/tmp")  # noqa: S108 - the container's own /tmp (a tmpfs)


def check_target(target: str) -> str:
    """A mount's container path, normalised; :class:`UnsafeMount` unless absolute, without ``..``, and not ``/``,
    the agent's home (its group folder), or ``/proc``, ``/sys``, ``/dev``, ``/tmp`` or under them."""
    # normpath keeps two leading slashes (POSIX lets them mean something else); Docker collapses them: so do we
    normal = "/" + posixpath.normpath(target).lstrip("/")
    reserved = any(normal == path or normal.startswith(path + "/") for path in _RESERVED_TARGETS)
    if not target.startswith("/") or ".." in target.split("/") or normal in {"/", AGENT_HOME} or reserved:
        raise UnsafeMount(
            target,
            f"the container path must be absolute, without '..', and neither /, {AGENT_HOME}, nor under "
            f"{', '.join(_RESERVED_TARGETS)}",
        )
    return normal
