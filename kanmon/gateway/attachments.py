"""Inbound attachments as kanmon reads them from a stored row, and the inbox file names they are saved under.

An adapter's ``attachments`` (SPEC §11, arizuko's shape) are dicts; kanmon reads ``name`` (or ``filename``, as the
Matrix adapter says; else the ``type`` or ``kind`` and an extension, ``photo.jpg``), ``mime`` (or ``mime_type``),
``size``, and where the bytes are: ``url`` (http or https) or ``data`` (base64). Other keys (``file_id``, ``mxc``,
…) are kept in the row and ignored here.

A file is saved as ``inbox/<seq>-<safe name>`` in the group folder (issue 14). :func:`safe_name` makes any name a
single harmless path component: never empty, ``.`` or ``..``, never a dot file, no separator (``/`` or ``\\``), no
NUL or other control character, at most :data:`MAX_NAME_BYTES` of UTF-8; the ``<seq>-`` prefix makes it unique per
message and keeps it from starting with a dot.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "INBOX",
    "MAX_NAME_BYTES",
    "InboundAttachment",
    "attachment_problem",
    "decode_data",
    "inbox_names",
    "read_attachments",
    "safe_name",
]

#: The folder, inside the group folder, that received files are saved in.
INBOX = "inbox"
#: Longest safe name, in bytes of UTF-8 (file systems allow 255 for the whole ``<seq>-<name>``).
MAX_NAME_BYTES = 120
_KEEP = frozenset("._-+,@=()[]")
_MAX_EXTENSION = 16
DEFAULT_MIME = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    """One attachment of a stored message: what the agent is told, and where its bytes come from."""

    name: str
    mime: str
    size: int | None  # as the sender declared it (the saved file's real size replaces it)
    url: str | None
    data: str | None  # base64


def read_attachments(raw: Sequence[Mapping[str, Any]] | None) -> list[InboundAttachment]:
    """The attachments of a row's ``attachments`` column; entries that are not objects are skipped."""
    found: list[InboundAttachment] = []
    for item in raw or ():
        if not isinstance(item, Mapping):
            continue
        mime = item.get("mime") or item.get("mime_type") or DEFAULT_MIME
        name = item.get("name") or item.get("filename") or _unnamed(item.get("type") or item.get("kind"), str(mime))
        size = item.get("size")
        url, data = item.get("url"), item.get("data")
        found.append(
            InboundAttachment(
                name=str(name),
                mime=str(mime),
                size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                url=url if isinstance(url, str) and url else None,
                data=data if isinstance(data, str) and data else None,
            )
        )
    return found


def _unnamed(kind: object, mime: str) -> str:
    """A name for a file its sender did not name: its kind (``photo``, ``voice``) or ``file``, and an extension for
    its mime type (``photo.jpg``)."""
    base = kind if isinstance(kind, str) and kind.isidentifier() else "file"
    return base + (mimetypes.guess_extension(mime, strict=False) or "")


def attachment_problem(item: object) -> str | None:
    """Why an adapter's attachment cannot be taken (one line), or None: not an object, a ``url`` that is not http or
    https, ``data`` that is not base64, a ``name``/``mime`` that is not text or a ``size`` that is not a count."""
    if not isinstance(item, Mapping):
        return "an attachment must be an object"
    url, data = item.get("url"), item.get("data")
    if url is not None and not (isinstance(url, str) and _is_http_url(url)):
        return "an attachment's url must be an http:// or https:// URL"
    if data is not None:
        if not isinstance(data, str):
            return "an attachment's data must be base64 text"
        try:
            decode_data(data)
        except ValueError as exc:
            return f"an attachment's data {exc}"
    for key in ("name", "filename", "mime"):
        if item.get(key) is not None and not isinstance(item.get(key), str):
            return f"an attachment's {key} must be text"
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        return "an attachment's size must be a number of bytes"
    return None


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def decode_data(data: str) -> bytes:
    """The bytes of base64 ``data`` (standard alphabet, padding optional); ValueError when it is not base64."""
    text = "".join(data.split())
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None


def safe_name(name: str) -> str:
    """``name`` as one harmless path component (see the module's rules); ``file`` when nothing of it is left."""
    text = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch if ch.isalnum() or ch in _KEEP else "_" for ch in text if ch.isprintable() or ch == " ")
    kept = kept.strip("._ ") or "file"
    if len(kept.encode()) <= MAX_NAME_BYTES:
        return kept
    stem, dot, extension = kept.rpartition(".")
    suffix = f".{extension}" if dot and stem and len(extension) <= _MAX_EXTENSION else ""
    base = kept[: len(kept) - len(suffix)] if suffix else kept
    budget = MAX_NAME_BYTES - len(suffix.encode())
    cut = base.encode()[:budget].decode(errors="ignore").rstrip("._ ") or "file"
    return cut + suffix


def inbox_names(seq: int, names: Sequence[str]) -> list[str]:
    """The inbox file names of one message's attachments: ``<seq>-<safe name>``, made unique within the message
    (a repeated name becomes ``<seq>-<n>-<safe name>``). Deterministic, so a retried run finds its files again."""
    used: set[str] = set()
    result: list[str] = []
    for index, name in enumerate(names):
        safe = safe_name(name)
        candidate, n = f"{seq}-{safe}", index
        while candidate in used:
            n += 1
            candidate = f"{seq}-{n}-{safe}"
        used.add(candidate)
        result.append(candidate)
    return result
