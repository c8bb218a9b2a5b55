"""Receiving a batch's attachments into its group folder before the agent reads its prompt (issue 14, item 3).

Rows are stored at once with their attachments' metadata; the bytes are fetched when a run starts, after it took its
batch and before the input document is written, so ingest never waits for a download and nothing is fetched for a
message no group takes. The group folder is the one the batch runs in (the group the message was routed to).

* **Where.** ``<group folder>/inbox/<seq>-<safe name>`` (:func:`kanmon.gateway.attachments.inbox_names`). The agent
  owns its folder and could plant a symlink, so the folder and ``inbox`` are opened without following symlinks and
  the file is created relative to that directory: whatever the name or the folder holds, nothing is written outside.
* **Crash safety.** A file is written beside its final name (``.<name>.part``), synced, then renamed: a crash leaves
  no half-written file at the final path, and a file already there is not fetched again (a retried batch, a run
  started again after a crash).
* **Never blocking the chat.** A fetch is bounded (:class:`~kanmon.gateway.fetch.FetchPolicy`); one that fails
  leaves the message with an ``<attachment … error="…"/>`` note and the run goes on.
* **Owner.** When gated runs as root, ``inbox`` and its files are given to the group folder's owner (the agent's
  user), so the agent may delete what it has read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from kanmon.container import PromptAttachment
from kanmon.container.mounts import AGENT_HOME
from kanmon.gateway.attachments import INBOX, InboundAttachment, decode_data, inbox_names, read_attachments
from kanmon.gateway.fetch import Fetcher, FetchFailed
from kanmon.store import Message

__all__ = ["Inbox", "agent_home", "existing_size", "save_file"]

logger = logging.getLogger(__name__)

_PARALLEL = 4  # files fetched at once per run
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def agent_home(runtime: str, group_dir: Path) -> str:
    """Where a run's agent finds its group folder: ``/home/agent`` in a container (``docker``), the folder's
    absolute host path for the process runtimes (their working directory)."""
    return AGENT_HOME if runtime == "docker" else str(group_dir.absolute())


def save_file(group_dir: Path, filename: str, content: bytes) -> int:
    """Write ``content`` to ``group_dir/inbox/filename`` (beside, synced, renamed) unless a regular file is there
    already; returns the file's size. Blocking: call it off the event loop.

    Raises ValueError for a ``filename`` that is not one plain component, OSError when the file system refuses
    (among others ``ELOOP`` when the folder or ``inbox`` is a symlink).
    """
    if not filename or filename in (".", "..") or "/" in filename or "\0" in filename or filename.startswith("."):
        raise ValueError(f"{filename!r} is not a plain file name")
    group = os.open(group_dir, _DIRECTORY)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(INBOX, 0o755, dir_fd=group)
        inbox = os.open(INBOX, _DIRECTORY, dir_fd=group)
        try:
            owner = os.fstat(group)
            _give(inbox, owner)
            with contextlib.suppress(FileNotFoundError):
                found = os.stat(filename, dir_fd=inbox, follow_symlinks=False)
                if _is_regular(found.st_mode):
                    return found.st_size
            part = f".{filename}.part"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part, dir_fd=inbox)  # a leftover of a crash
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=inbox)
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                _give(fd, owner)
            finally:
                os.close(fd)
            os.rename(part, filename, src_dir_fd=inbox, dst_dir_fd=inbox)
            os.fsync(inbox)
            return len(content)
        finally:
            os.close(inbox)
    finally:
        os.close(group)


def existing_size(group_dir: Path, filename: str) -> int | None:
    """The size of the regular file ``group_dir/inbox/filename``, or None when there is none; no symlink is
    followed on the way. Blocking. Raises OSError when the folder or ``inbox`` is not a plain directory."""
    group = os.open(group_dir, _DIRECTORY)
    try:
        try:
            inbox = os.open(INBOX, _DIRECTORY, dir_fd=group)
        except FileNotFoundError:
            return None
        try:
            found = os.stat(filename, dir_fd=inbox, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(inbox)
    finally:
        os.close(group)
    return found.st_size if _is_regular(found.st_mode) else None


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _give(fd: int, owner: os.stat_result) -> None:
    """As root, hand ``fd`` to the owner of the group folder (the agent's user)."""
    if os.geteuid() == 0:
        found = os.fstat(fd)
        if (found.st_uid, found.st_gid) != (owner.st_uid, owner.st_gid):
            os.fchown(fd, owner.st_uid, owner.st_gid)


class Inbox:
    """Fetches and saves the attachments of a batch's rows into the group folder under ``data_dir/groups``."""

    def __init__(self, fetcher: Fetcher, data_dir: Path) -> None:
        self.fetcher = fetcher
        self._groups = data_dir / "groups"
        self._slots = asyncio.Semaphore(_PARALLEL)

    async def receive(
        self, rows: Sequence[Message], folder: str, runtime: str, rename: Callable[[str], str] = str
    ) -> dict[int, list[PromptAttachment]]:
        """The attachments of ``rows`` by seq, each saved (with the path ``runtime``'s agent opens) or with the
        reason it is not; rows without attachments are left out. Never raises for a file that cannot be had.
        ``rename`` turns a sender's file name into the name the file is saved under (PII redaction keeps real ids
        out of paths: :mod:`kanmon.gateway.privacy`); it must give the same name every time."""
        group_dir = self._groups / folder
        home = agent_home(runtime, group_dir)
        jobs: list[tuple[int, asyncio.Task[PromptAttachment]]] = []
        for row in rows:
            found = read_attachments(row.attachments)
            for attachment, filename in zip(found, inbox_names(row.seq, [rename(a.name) for a in found]), strict=True):
                task = asyncio.ensure_future(self._one(attachment, group_dir, filename, home, row.seq))
                jobs.append((row.seq, task))
        result: dict[int, list[PromptAttachment]] = {}
        for seq, task in jobs:
            result.setdefault(seq, []).append(await task)
        return result

    async def _one(
        self, attachment: InboundAttachment, group_dir: Path, filename: str, home: str, seq: int
    ) -> PromptAttachment:
        name, mime = attachment.name, attachment.mime
        try:
            async with self._slots:
                size = await self._fetch_and_save(attachment, group_dir, filename)
        except (FetchFailed, ValueError) as exc:
            logger.warning("message seq=%d: attachment %r not received: %s", seq, name, exc)
            return PromptAttachment(name=name, mime=mime, size=attachment.size, error=f"not received: {exc}")
        except OSError as exc:
            logger.error("message seq=%d: attachment %r could not be saved in %s: %s", seq, name, group_dir, exc)
            reason = f"not received: kanmon could not save it ({exc.strerror or exc})"
            return PromptAttachment(name=name, mime=mime, size=attachment.size, error=reason)
        return PromptAttachment(name=name, mime=mime, size=size, path=f"{home}/{INBOX}/{filename}")

    async def _fetch_and_save(self, attachment: InboundAttachment, group_dir: Path, filename: str) -> int:
        existing = await asyncio.to_thread(existing_size, group_dir, filename)
        if existing is not None:
            return existing
        cap = self.fetcher.policy.max_bytes
        if attachment.data is not None:
            content = decode_data(attachment.data)
            if len(content) > cap:
                raise FetchFailed(f"larger than the limit of {cap} bytes")
        elif attachment.url is not None:
            content = await self.fetcher.fetch(attachment.url)
        else:
            raise FetchFailed("the sender gave neither a url nor data")
        return await asyncio.to_thread(save_file, group_dir, filename, content)
