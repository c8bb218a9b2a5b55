"""kanmon's media store: the files agents send, copied out of their folders, kept content-addressed (issue 14, item 4).

A file an output block lists is copied (:func:`~kanmon.gateway.folder_files.open_folder_file` opens it without
leaving the folder) to ``<data_dir>/media/<first 2 hex>/<other 62 hex of its sha256>``: written beside, under
``media/tmp/``, synced, then renamed into place, so a reader never sees half a file and a crash leaves at most a
temporary file. The same bytes are stored once however often they are sent (a replayed output block after a crash,
the same chart twice). Its type is sniffed from its bytes (``filetype``), never taken from its name: only a file
that really is an image is ever shown inline.

On an outbound row a file is ``{"sha256", "name", "mime", "size"}`` (:meth:`StoredFile.record`). All file I/O runs
on the store's own two threads (:class:`MediaStore`'s async methods), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import mimetypes
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from kanmon.container.events import AttachmentRef
from kanmon.gateway.errors import AttachmentRefused
from kanmon.gateway.folder_files import open_folder_file, relative_parts

__all__ = ["MediaConfig", "MediaStore", "StoredFile", "is_sha256", "safe_name", "sniff"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 16
SNIFF_BYTES = 8192  # what the type is guessed from
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/x-yaml", "application/yaml"})


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    """Limits of the files agents send (``media.*`` keys): sizes in bytes, ``url_ttl`` in seconds, ``public_url``
    the base URL adapters download from (empty: gated's own listen address)."""

    max_bytes: int = 20 << 20
    inline_bytes: int = 256 << 10
    url_ttl: float = 900.0
    public_url: str = ""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file in the media store: its sha256 (hex), size in bytes, sniffed MIME type and the name shown for it."""

    sha256: str
    size: int
    mime: str
    name: str

    def record(self) -> dict[str, Any]:
        """The file as an outbound row's ``attachments`` entry."""
        return {"sha256": self.sha256, "name": self.name, "mime": self.mime, "size": self.size}

    @classmethod
    def from_record(cls, value: object) -> StoredFile | None:
        """The file an ``attachments`` entry of a row stands for; None for an entry that is not one of the media
        store's (an inbound attachment an adapter described, say)."""
        if not isinstance(value, Mapping) or not is_sha256(value.get("sha256")):
            return None
        size, mime, name = value.get("size"), value.get("mime"), value.get("name")
        if not isinstance(size, int) or not isinstance(mime, str) or not isinstance(name, str):
            return None
        return cls(sha256=str(value["sha256"]), size=size, mime=mime, name=name)


def is_sha256(value: object) -> bool:
    """True for a sha256 in lower-case hex (64 characters)."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def safe_name(name: str | None, path: str) -> str:
    """The name a chat shows for a file: ``name``, else the path's last part; no directories, no control
    characters, at most 200 characters; ``"file"`` when nothing is left."""
    raw = name if name else path.rstrip("/").rpartition("/")[2]
    base = raw.replace("\\", "/").rpartition("/")[2]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()[:200]
    return cleaned if cleaned not in ("", ".", "..") else "file"


def sniff(head: bytes, name: str) -> str:
    """The MIME type of a file whose first bytes are ``head``: by its magic numbers; text (UTF-8, no NUL) is
    ``text/plain`` unless its name says which text (``.csv``, ``.json``, …); anything else
    ``application/octet-stream``. The name never makes a file an image."""
    import filetype  # here: a gated whose agents send no files never loads it (0.4 MiB of resident memory)

    kind = filetype.guess_mime(head) if head else None
    if kind:
        return str(kind)
    if b"\x00" not in head and _utf8(head):
        guessed = mimetypes.guess_type(name, strict=False)[0]
        return guessed if guessed and (guessed.startswith("text/") or guessed in _TEXT_TYPES) else "text/plain"
    return "application/octet-stream"


def _utf8(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"  # cut in a character
    return True


class MediaStore:
    """The content-addressed files under ``root`` (``<data_dir>/media``); ``max_bytes`` caps one file."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._threads: ThreadPoolExecutor | None = None

    def path_of(self, sha256: str) -> Path:
        """Where the file ``sha256`` is kept. Raises ``ValueError`` for a value that is not a sha256."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:]

    # ------------------------------------------------------------------------------------------ blocking
    def collect(self, folder: Path, ref: AttachmentRef, *, root: Path | None = None) -> StoredFile:
        """Copy the file ``ref`` names in ``folder`` (under ``root``, when given) into the store (once per content).
        Blocking.

        Raises :class:`AttachmentRefused` (see :func:`~kanmon.gateway.folder_files.open_folder_file`), also for a
        file that grows past ``max_bytes`` while it is read.
        """
        name = safe_name(ref.name, "/".join(relative_parts(ref.path, folder)))
        fd, _ = open_folder_file(folder, ref.path, max_bytes=self.max_bytes, root=root)
        with os.fdopen(fd, "rb", buffering=0) as source:
            return self._store(source, name, ref.path)

    def _store(self, source: Any, name: str, shown: str) -> StoredFile:
        spool = self.root / "tmp"
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(dir=spool, prefix="in-")
        try:
            digest, size, head = hashlib.sha256(), 0, b""
            with os.fdopen(fd, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise AttachmentRefused(f"attachment {shown!r}: grew past the {self.max_bytes} bytes allowed")
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
            stored = StoredFile(sha256=digest.hexdigest(), size=size, mime=sniff(head, name), name=name)
            target = self.path_of(stored.sha256)
            if target.exists():
                return stored  # the same bytes are kept already: stored once
            target.parent.mkdir(exist_ok=True, mode=0o700)
            Path(temporary).replace(target)
            _sync_directory(target.parent)
            return stored
        finally:
            Path(temporary).unlink(missing_ok=True)

    def sweep(self, *, now: float, older_than: float) -> int:
        """Remove temporary files a crash left in the spool, last changed more than ``older_than`` seconds before
        ``now`` (Unix seconds; a copy in progress, perhaps a standby's beside the same data dir, is never that
        old). Returns how many went. Blocking."""
        removed = 0
        try:
            leftovers = list((self.root / "tmp").iterdir())
        except FileNotFoundError:
            return 0
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                if now - path.lstat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
        return removed

    def read(self, sha256: str) -> bytes:
        """The bytes of the file ``sha256``. Blocking. Raises ``FileNotFoundError`` when it is not kept here."""
        return self.path_of(sha256).read_bytes()

    # ------------------------------------------------------------------------------------------ async
    async def collect_async(self, folder: Path, ref: AttachmentRef, *, root: Path | None = None) -> StoredFile:
        """:meth:`collect`, on the media store's threads."""
        return await self.run(partial(self.collect, folder, ref, root=root))

    async def collect_all(
        self, folder: Path, refs: Sequence[AttachmentRef], *, root: Path | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Collect each of ``refs`` from ``folder`` (under ``root``): the stored files' records (for a row's
        ``attachments``), and one line for each file that could not be (refused, or the media store's disk
        failing)."""
        records: list[dict[str, Any]] = []
        refused: list[str] = []
        for ref in refs:
            try:
                stored = await self.collect_async(folder, ref, root=root)
            except AttachmentRefused as exc:
                refused.append(str(exc))
                logger.warning("%s", exc)
            except OSError as exc:
                refused.append(f"attachment {ref.path[:200]!r}: could not be stored ({exc.strerror or exc})")
                logger.error("the media store at %s failed: %s", self.root, exc)
            else:
                records.append(stored.record())
        return records, refused

    async def read_async(self, sha256: str) -> bytes:
        """:meth:`read`, on the media store's threads."""
        return await self.run(partial(self.read, sha256))

    async def open_async(self, sha256: str) -> tuple[BinaryIO, int, bytes]:
        """The file ``sha256`` opened for reading, its size in bytes and its first :data:`SNIFF_BYTES` (already
        read: :meth:`chunks` starts after them). Raises ``FileNotFoundError`` when it is not kept here."""

        def opened() -> tuple[BinaryIO, int, bytes]:
            file = self.path_of(sha256).open("rb")
            return file, os.fstat(file.fileno()).st_size, file.read(SNIFF_BYTES)

        return await self.run(opened)

    async def chunks(self, file: BinaryIO, head: bytes = b"") -> AsyncIterator[bytes]:
        """``head``, then the rest of ``file`` in 256 KiB pieces, each read on the media store's threads; closes
        ``file`` at the end (or when the reader stops early)."""
        try:
            if head:
                yield head
            while chunk := await self.run(partial(file.read, _CHUNK * 4)):
                yield chunk
        finally:
            file.close()

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on the media store's threads (file I/O that must not hold up the event loop)."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kanmon-media")
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    def close(self) -> None:
        """Let the threads go (a later call starts new ones)."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
