"""The sticky layer (SPEC §6.1): a whole message of exactly ``@``, ``@<folder>``, ``#`` or ``#<topic>``.

- ``@`` clears the chat's sticky group, ``#`` its sticky topic.
- ``@<folder>`` sets the sticky group when the folder is registered and the chat's owner may route to it: the owner
  itself or a descendant (``corp`` may stick to ``corp/eng``, ``corp/eng`` may not stick to ``corp`` or
  ``corp/ops``). The name may be a full folder or relative to the owner (``@eng`` in a ``corp`` chat means
  ``corp/eng``). Anything else gets an error reply and changes nothing.
- ``#<topic>`` sets the sticky topic; it is stored with its ``#`` (``#support``), the same key the prefix layer and
  ``/new #support`` use for the session.

Leading and trailing whitespace is ignored; any whitespace inside means the message is not a sticky command (so
``@bob hello`` is for the prefix layer, and a message that is only ``@bob`` is a sticky request).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from kanmon.folders import is_valid_folder
from kanmon.gateway.context import LayerContext, may_route
from kanmon.gateway.decisions import Consumed, Layer
from kanmon.store import Message

__all__ = ["StickyRequest", "apply_sticky", "parse_sticky"]

logger = logging.getLogger(__name__)

_TOPIC = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class StickyRequest:
    """A sticky command: which setting (``group`` or ``topic``) and the new value (empty clears it)."""

    kind: Literal["group", "topic"]
    value: str


def parse_sticky(content: str) -> StickyRequest | None:
    """The sticky request ``content`` is, or None when it is an ordinary message."""
    text = content.strip()
    if not text or text[0] not in "@#" or any(ch.isspace() for ch in text):
        return None
    name = text[1:]
    if text[0] == "@":
        return StickyRequest("group", name)
    # `#` followed by something that is not a topic name (`#!!`, `##`) is just text.
    if name and _TOPIC.fullmatch(name) is None:
        return None
    return StickyRequest("topic", f"#{name}" if name else "")


def apply_sticky(request: StickyRequest, message: Message, ctx: LayerContext, owner: str) -> Consumed:
    """Check and store ``request`` for the message's chat, answer it, and consume the message."""
    if request.kind == "topic":
        text = f"topic → {request.value}" if request.value else "topic reset to default"
        changes: dict[str, str | None] = {"sticky_topic": request.value or None}
    else:
        folder, error = _sticky_folder(request.value, ctx, owner)
        if error:
            return _answer(message, ctx, f"Failed: {error}", f"sticky group refused: {error}")
        text = f"routing → {folder}" if folder else "routing reset to default"
        changes = {"sticky_group": folder or None}
    if ctx.dry_run:
        return Consumed(message, Layer.STICKY, f"would set {_describe(changes)} and reply {text!r}")
    ctx.steer(message.chat_jid, **changes)
    logger.info("sticky %s", _describe(changes))
    return _answer(message, ctx, text, f"set {_describe(changes)}")


def _sticky_folder(name: str, ctx: LayerContext, owner: str) -> tuple[str, str]:
    """The folder ``@name`` means (``""`` clears) and an error, of which at most one is non-empty."""
    if not name:
        return "", ""
    # A full folder path first, then a path relative to the owner.
    for folder in (name, f"{owner}/{name}"):
        if is_valid_folder(folder) and ctx.group(folder) is not None and may_route(owner, folder):
            return folder, ""
    return "", f"group {name!r} not found among {owner} and its sub-groups"


def _answer(message: Message, ctx: LayerContext, text: str, why: str) -> Consumed:
    if ctx.dry_run:
        return Consumed(message, Layer.STICKY, f"would reply {text!r} ({why})")
    return Consumed(message, Layer.STICKY, why, (ctx.reply(message, text),))


def _describe(changes: dict[str, str | None]) -> str:
    return ", ".join(f"{key}={value or 'none'}" for key, value in changes.items())
