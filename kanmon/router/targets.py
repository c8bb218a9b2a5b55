"""Route targets (SPEC §6.4): where a matched message goes.

Grammar, after ``{sender}`` expansion:

- ``<folder>`` or ``folder:<folder>``: an agent group; the folder must pass :func:`kanmon.folders.validate_folder`;
- ``builtin:ping`` or ``builtin:drop``: a handler inside the gateway;
- ``daemon:<name>``: an HTTP POST to the daemon configured under ``<name>`` (a folder-segment-like name).

``{sender}`` may appear only in a folder target; it expands to :func:`sender_file_id` of the message's sender. When
that id is empty, or (given the registered folders) names no registered folder, the route is skipped for the message
and the caller moves on to the next route.

A target being written must also name something that exists (:func:`check_target_known`): a registered group, a
configured daemon. The router is told which exist; it never looks them up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from kanmon.errors import InvalidFolder, closest_name
from kanmon.folders import validate_folder
from kanmon.router.errors import RouteError

__all__ = [
    "BUILTINS",
    "SENDER_PLACEHOLDER",
    "Target",
    "TargetKind",
    "check_target_known",
    "expand_target",
    "folder_targets",
    "is_daemon_name",
    "parse_target",
    "sender_file_id",
    "validate_target",
]

BUILTINS = frozenset({"ping", "drop"})
SENDER_PLACEHOLDER = "{sender}"

_DAEMON_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")
_LEADING_JUNK = re.compile(r"^[^a-z0-9]+")
_SAMPLE_SENDER_ID = "x"
_MAX_ID = 63
_PLAIN_SENDER = re.compile(r"[a-z0-9]+(?::[a-z0-9]+)*")
_DIGEST_HEX = 16


class TargetKind(StrEnum):
    """Where a target sends the message."""

    FOLDER = "folder"
    BUILTIN = "builtin"
    DAEMON = "daemon"


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target: its kind and the folder, builtin or daemon name."""

    kind: TargetKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


def sender_file_id(sender: str) -> str:
    """A file-safe id for ``sender`` (a folder segment: ``[a-z0-9][a-z0-9_-]``, ≤ 63 chars), never another sender's.

    ``{sender}`` gives each sender a folder of its own (SPEC §6.4), so two senders must never get the same id: a
    look-alike account (``@alice-smith:hs`` for ``@alice.smith:hs``) would otherwise be routed to its victim's folder
    and session.

    * A plain sender, lowercase letters and digits with ``:`` between runs of them (``telegram:42``, ``api:3``), keeps
      its text with ``-`` for ``:`` (``telegram-42``): readable, and one to one.
    * Any other (``@alice.smith:matrix.org``, ``telegram:-100…``, capitals, long ids): its readable form, cut to 45
      characters, then ``--`` and 16 hex digits of the SHA-256 of the exact sender (``alice-smith-matrix-org--3f…``).
      A plain id never holds ``--``, so the two kinds never meet; two senders of the second kind meet only if 64 bits
      of SHA-256 do.
    * ``""`` when not one character of it is file-safe (the route is then skipped, as for no sender).
    """
    if len(sender) <= _MAX_ID and _PLAIN_SENDER.fullmatch(sender):
        return sender.replace(":", "-")
    readable = _LEADING_JUNK.sub("", _DASHES.sub("-", _UNSAFE.sub("-", sender.lower())))
    if not readable:
        return ""
    digest = hashlib.sha256(sender.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_HEX]
    return f"{readable[: _MAX_ID - 2 - _DIGEST_HEX].rstrip('-')}--{digest}"


def expand_target(template: str, sender: str) -> str | None:
    """Replace every ``{sender}``; None when the template needs a sender id and this sender has none."""
    if SENDER_PLACEHOLDER not in template:
        return template
    sender_id = sender_file_id(sender)
    if not sender_id:
        return None
    return template.replace(SENDER_PLACEHOLDER, sender_id)


def is_daemon_name(name: str) -> bool:
    """Whether ``name`` may follow ``daemon:`` in a target: lowercase letters, digits, ``_`` or ``-``, starting with a
    letter or digit, at most 63 characters (the names of the ``daemons`` setting must be such names)."""
    return _DAEMON_NAME.fullmatch(name) is not None


def parse_target(text: str) -> Target:
    """Parse an expanded target, or raise :class:`RouteError` with one clear line."""
    kind, sep, name = text.partition(":")
    if not sep:
        return Target(TargetKind.FOLDER, _folder(text, text))
    if kind == TargetKind.FOLDER.value:
        return Target(TargetKind.FOLDER, _folder(name, text))
    if kind == TargetKind.BUILTIN.value:
        if name not in BUILTINS:
            known = ", ".join(sorted(BUILTINS))
            raise RouteError(f"target {text!r}: unknown builtin {name!r} (known: {known})")
        return Target(TargetKind.BUILTIN, name)
    if kind == TargetKind.DAEMON.value:
        if not is_daemon_name(name):
            raise RouteError(
                f"target {text!r}: daemon name must be lowercase letters, digits, '_' or '-', starting with a letter "
                "or digit (at most 63)"
            )
        return Target(TargetKind.DAEMON, name)
    raise RouteError(f"target {text!r}: unknown kind {kind!r} (use a folder, folder:, builtin: or daemon:)")


def validate_target(template: str) -> Target:
    """Check a target as written (``{sender}`` allowed in folder targets only); return it parsed with a sample id."""
    leftover = template.replace(SENDER_PLACEHOLDER, "")
    if "{" in leftover or "}" in leftover:
        raise RouteError(f"target {template!r}: the only placeholder is {SENDER_PLACEHOLDER}")
    expanded = template.replace(SENDER_PLACEHOLDER, _SAMPLE_SENDER_ID)
    target = parse_target(expanded)
    if SENDER_PLACEHOLDER in template and target.kind is not TargetKind.FOLDER:
        raise RouteError(f"target {template!r}: {SENDER_PLACEHOLDER} is allowed only in a folder target")
    return target


def check_target_known(template: str, *, folders: Collection[str], daemons: Collection[str]) -> Target:
    """Check ``template`` as :func:`validate_target` does, and that what it names exists; return it parsed.

    A folder target must be one of ``folders`` (the registered groups) and a ``daemon:`` target one of ``daemons``
    (the names in the ``daemons`` setting); a ``{sender}`` template names a folder only per message, so it is left
    to :func:`kanmon.router.resolve`. Raises :class:`RouteError`, one line, with a "did you mean" when one is close.
    """
    target = validate_target(template)
    if target.kind is TargetKind.FOLDER and SENDER_PLACEHOLDER not in template and target.name not in folders:
        raise RouteError(f"target {template!r}: no group {target.name!r} is registered{_hint(target.name, folders)}")
    if target.kind is TargetKind.DAEMON and target.name not in daemons:
        configured = f"configured: {', '.join(sorted(daemons))}" if daemons else "no daemons are configured"
        raise RouteError(
            f"target {template!r}: no daemon {target.name!r} in the daemons setting{_hint(target.name, daemons)} "
            f"({configured})"
        )
    return target


def folder_targets(folder: str) -> tuple[str, str]:
    """The ways a route's target can name ``folder``: ``<folder>`` and ``folder:<folder>``."""
    return folder, f"{TargetKind.FOLDER.value}:{folder}"


def _hint(name: str, known: Collection[str]) -> str:
    close = closest_name(name, known)
    return f", did you mean {close}?" if close else ""


def _folder(folder: str, text: str) -> str:
    try:
        return validate_folder(folder)
    except InvalidFolder as exc:
        raise RouteError(f"target {text!r}: {exc}") from exc
