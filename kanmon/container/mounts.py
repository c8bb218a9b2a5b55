"""Which host paths a run may see: the group folder, and extra mounts from the allowlist, never through symlinks.

Blocking file-system work; the runtimes call these functions off the event loop.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kanmon.container.base import AllowedMount, Mount
from kanmon.container.errors import UnsafeMount

__all__ = ["AGENT_HOME", "BoundMount", "check_no_escaping_symlinks", "prepare_group_dir", "resolve_mounts"]

logger = logging.getLogger(__name__)

AGENT_HOME = "/home/agent"


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


def prepare_group_dir(data_dir: Path, group_dir: Path, owner: tuple[int, int] | None = None) -> Path:
    """Create the group folder if missing and check it; return its resolved path.

    Refuses a folder that is (or passes through, or contains) a symlink leading outside ``data_dir``. A folder
    created here is given to ``owner`` (uid, gid) when kanmon runs as root, so a non-root agent can write to it.
    """
    root = data_dir.resolve()
    if not group_dir.is_absolute():
        raise UnsafeMount(str(group_dir), "the group folder must be an absolute path")
    if not _inside(group_dir.resolve(), root):
        raise UnsafeMount(str(group_dir), f"it resolves to {group_dir.resolve()}, outside the data dir {root}")
    if not group_dir.exists():
        group_dir.mkdir(parents=True, mode=0o755)
        if owner is not None and os.geteuid() == 0:
            os.chown(group_dir, *owner)
        logger.info("created group folder %s", group_dir)
    check_no_escaping_symlinks(group_dir, root)
    return group_dir.resolve()


def resolve_mounts(mounts: Sequence[Mount], allowlist: Sequence[AllowedMount]) -> list[BoundMount]:
    """Check extra mounts against the allowlist: each must exist under an allowed root; writable only if allowed."""
    bound = []
    for mount in mounts:
        target = _check_target(mount.target)
        source = mount.source.resolve()
        entry = next((a for a in allowlist if _inside(source, a.root.resolve())), None)
        if entry is None:
            raise UnsafeMount(str(mount.source), "it is not under any allowed mount root")
        if not source.exists():
            raise UnsafeMount(str(mount.source), "it does not exist")
        check_no_escaping_symlinks(source, entry.root.resolve())
        read_only = mount.read_only or not entry.writable
        if read_only and not mount.read_only:
            logger.warning("mount %s asked to be writable but its allowlist entry is read-only", mount.source)
        bound.append(BoundMount(source, target, read_only))
    return bound


def _check_target(target: str) -> str:
    normal = posixpath.normpath(target)
    if not target.startswith("/") or ".." in target.split("/") or normal in {"/", AGENT_HOME}:
        raise UnsafeMount(target, f"the container path must be absolute, without '..', and neither / nor {AGENT_HOME}")
    return normal
