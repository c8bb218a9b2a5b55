"""Opening a file an agent names in its output, without ever reading anything outside its folder (issue 14, item 4).

An agent lists files it wrote (``{"path": "out/chart.png"}``); kanmon copies them out of the group folder. The agent
controls everything inside that folder, including while kanmon reads it, so the path is never resolved as a string
and then opened (a symlink swapped in between the two would win). Instead:

1. the path is split into components: relative only (``/home/agent/`` in front, the container's view of the folder,
   is taken off), no ``..``, no NUL, at most :data:`MAX_PATH_BYTES` bytes and :data:`MAX_NAME_BYTES` per component;
2. from a descriptor of the folder, each directory is opened with ``O_PATH | O_DIRECTORY | O_NOFOLLOW`` relative to
   the one before (``openat``): a symlink anywhere fails, whatever it points to, and a directory renamed or swapped
   meanwhile is either the one opened or not used at all;
3. the last component is opened ``O_PATH | O_NOFOLLOW`` (which opens nothing's contents: no FIFO blocks, no device
   is touched) and ``fstat``-ed: only a regular file with one link (a hard link could name a file outside) and no
   more than the size cap goes on;
4. that very inode is opened for reading through ``/proc/self/fd/N``, ``O_NONBLOCK``, and checked to be the same.

Errors are one :class:`~kanmon.gateway.errors.AttachmentRefused` line naming the path as given and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from kanmon.gateway.errors import AttachmentRefused

__all__ = ["CONTAINER_HOME", "MAX_NAME_BYTES", "MAX_PATH_BYTES", "open_folder_file", "relative_parts"]

CONTAINER_HOME = "/home/agent/"  # where the folder is mounted in a container (docs/agent-protocol.md)
MAX_PATH_BYTES = 4096  # PATH_MAX
MAX_NAME_BYTES = 255  # NAME_MAX

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LEAF_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _shown(path: str) -> str:
    """``path`` fit for one error line: printable and at most 200 characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in path[:200])
    return repr(text + ("…" if len(path) > 200 else ""))


def relative_parts(path: str, folder: Path | None = None) -> tuple[str, ...]:
    """The components of ``path`` inside the folder: ``"out/./chart.png"`` is ``("out", "chart.png")``.

    An absolute path may start with the folder as the agent sees it: ``/home/agent/`` in a container, ``folder``'s
    own path on the process runtime. Raises :class:`AttachmentRefused` for any other absolute path, ``..``, NUL, a
    path or component too long, text that is not UTF-8 encodable, or no file name at all.
    """
    if "\x00" in path:
        raise AttachmentRefused(f"attachment {_shown(path)}: the path holds a NUL byte")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise AttachmentRefused(f"attachment {_shown(path)}: the path is not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise AttachmentRefused(f"attachment {_shown(path)}: the path is longer than {MAX_PATH_BYTES} bytes")
    homes = (CONTAINER_HOME, *([] if folder is None else [f"{str(folder).rstrip('/')}/"]))
    relative = next((path.removeprefix(home) for home in homes if path.startswith(home)), path)
    if relative.startswith("/"):
        raise AttachmentRefused(f"attachment {_shown(path)}: the path must be relative to the agent's folder")
    parts = tuple(part for part in relative.split("/") if part not in ("", "."))
    if ".." in parts:
        raise AttachmentRefused(f"attachment {_shown(path)}: '..' may not appear in the path")
    if not parts:
        raise AttachmentRefused(f"attachment {_shown(path)}: the path names no file")
    if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in parts):
        raise AttachmentRefused(f"attachment {_shown(path)}: a path component is longer than {MAX_NAME_BYTES} bytes")
    return parts


@contextlib.contextmanager
def _descriptor(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_folder_file(
    folder: Path, path: str, *, max_bytes: int, root: Path | None = None
) -> tuple[int, os.stat_result]:
    """A descriptor open for reading on the regular file ``path`` inside ``folder``, and its ``fstat``.

    With ``root`` (``<data_dir>/groups``), ``folder`` must lie under it, and the folder's own components below it are
    opened without following symlinks too: a nested group's folder (``corp/eng``) lies inside its parent's, whose
    agent could swap it for a symlink while the child runs. The caller closes the descriptor. ``max_bytes`` caps the
    file's size (the caller still stops reading past it: a file may grow while it is read). Blocking (a few system
    calls): call it off the event loop. Raises :class:`AttachmentRefused` when the path leaves the folder in any
    way, crosses a symlink, names something other than a regular file with one link, is larger than ``max_bytes``,
    or does not exist.
    """
    parts = relative_parts(path, folder)
    shown = _shown(path)
    start, below = (folder, ()) if root is None else (root, folder.relative_to(root).parts)
    try:
        current = os.open(start, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise AttachmentRefused(f"attachment {shown}: the agent's folder cannot be opened ({exc.strerror})") from None
    try:
        for part in below:
            following = _open_at(current, part, _DIR_FLAGS, f"{shown} (its group folder)", directory=True)
            os.close(current)
            current = following
        for part in parts[:-1]:
            following = _open_at(current, part, _DIR_FLAGS, shown, directory=True)
            os.close(current)
            current = following
        leaf = _open_at(current, parts[-1], _LEAF_FLAGS, shown, directory=False)
    finally:
        os.close(current)
    with _descriptor(leaf):
        found = os.fstat(leaf)
        _check(found, shown, max_bytes)
        # the inode just checked, by its descriptor: no name is looked up again, so nothing can be swapped in
        try:
            fd = os.open(f"/proc/self/fd/{leaf}", _READ_FLAGS)
        except OSError as exc:
            raise AttachmentRefused(f"attachment {shown}: cannot be read ({exc.strerror})") from None
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino) or not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise AttachmentRefused(f"attachment {shown}: the file changed while it was opened")
    return fd, opened


def _open_at(parent: int, name: str, flags: int, shown: str, *, directory: bool) -> int:
    """``openat(parent, name, flags)``, its failures as one line each."""
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            reason = "no such file in the agent's folder"
        elif exc.errno in (errno.ELOOP, errno.ENOTDIR) and directory:
            reason = f"{name!r} is not a directory inside the folder (symbolic links are not followed)"
        else:
            reason = exc.strerror or type(exc).__name__
        raise AttachmentRefused(f"attachment {shown}: {reason}") from None


def _check(found: os.stat_result, shown: str, max_bytes: int) -> None:
    if stat.S_ISLNK(found.st_mode):
        raise AttachmentRefused(f"attachment {shown}: is a symbolic link (only files inside the folder are sent)")
    if not stat.S_ISREG(found.st_mode):
        raise AttachmentRefused(f"attachment {shown}: is not a regular file")
    if found.st_nlink != 1:
        raise AttachmentRefused(f"attachment {shown}: has {found.st_nlink} hard links (only a file with one is sent)")
    if found.st_size > max_bytes:
        raise AttachmentRefused(f"attachment {shown}: {found.st_size} bytes, more than the {max_bytes} allowed")
