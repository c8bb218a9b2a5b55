"""Agent actions (issue 15): what an output block's ``actions`` list asks kanmon to do, parsed but not yet checked.

An output block may carry, besides or instead of its ``result``::

    "actions": [
      {"type": "send", "chat": "telegram:-100", "text": "Build is green", "attachments": [{"path": "out/log.txt"}]},
      {"type": "schedule", "cron": "0 9 * * 1-5", "tz": "Europe/Berlin", "prompt": "Summarise the inbox"},
      {"type": "cancel_task", "id": 7},
      {"type": "list_tasks"}
    ]

:func:`parse_actions` checks the shape of each entry only; whether the agent may do it (which chats, which folder)
is the gateway's business (:mod:`kanmon.gateway.actions`). An entry of the wrong shape becomes a
:class:`BadAction`, refused like any other, so the rest of the block still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kanmon.container.events import AttachmentRef
from kanmon.errors import InvalidInput

__all__ = [
    "ACTION_TYPES",
    "MAX_ACTIONS",
    "Action",
    "BadAction",
    "CancelTaskAction",
    "ListTasksAction",
    "MalformedAction",
    "ScheduleAction",
    "SendAction",
    "actions_problem",
    "parse_actions",
]

MAX_ACTIONS = 20  # actions one output block may carry
ACTION_TYPES = ("send", "schedule", "cancel_task", "list_tasks")
_KINDS: tuple[Literal["cron", "every", "at"], ...] = ("cron", "every", "at")


@dataclass(frozen=True, slots=True)
class SendAction:
    """Send ``text`` (and files of the agent's folder) to ``chat`` (``<platform>:<room>``), in ``topic``."""

    chat: str
    text: str
    attachments: tuple[AttachmentRef, ...] = ()
    topic: str = ""


@dataclass(frozen=True, slots=True)
class ScheduleAction:
    """Add a task: ``kind``/``expression`` as ``gated task add`` takes them (``cron`` + ``tz``, ``every``, ``at``);
    ``folder`` None: the agent's own; ``chat`` None: the folder's web chat; ``tz`` None: ``scheduler.timezone``."""

    kind: Literal["cron", "every", "at"]
    expression: str
    prompt: str
    tz: str | None = None
    chat: str | None = None
    topic: str = ""
    missed: str = "latest"
    folder: str | None = None


@dataclass(frozen=True, slots=True)
class CancelTaskAction:
    """End the task ``task_id`` (status done): one of the agent's folder's, or any for a root group."""

    task_id: int


@dataclass(frozen=True, slots=True)
class ListTasksAction:
    """List the tasks of ``folder`` (None: the agent's own) into a system message for the agent's next turn."""

    folder: str | None = None


@dataclass(frozen=True, slots=True)
class BadAction:
    """An entry that is not a well-formed action: refused with ``reason``."""

    reason: str


Action = SendAction | ScheduleAction | CancelTaskAction | ListTasksAction | BadAction


def actions_problem(value: object) -> str | None:
    """What makes a block's whole ``actions`` value unusable (not a list, or too long), or None."""
    if value is None:
        return None
    if not isinstance(value, list):
        return "actions must be a list of objects"
    if len(value) > MAX_ACTIONS:
        return f"at most {MAX_ACTIONS} actions per block, not {len(value)}"
    return None


def parse_actions(value: list[Any] | None) -> tuple[Action, ...]:
    """Each entry of a block's ``actions`` (already passed by :func:`actions_problem`) as an :data:`Action`."""
    return tuple(_parse(index, item) for index, item in enumerate(value or ()))


def _parse(index: int, item: object) -> Action:
    try:
        if not isinstance(item, dict):
            raise MalformedAction("must be an object")
        kind = item.get("type")
        if kind == "send":
            return SendAction(
                chat=_text(item, "chat"), text=_text(item, "text", empty=True), topic=_text(item, "topic", default=""),
                attachments=_refs(item.get("attachments")),
            )  # fmt: skip
        if kind == "schedule":
            return _schedule(item)
        if kind == "cancel_task":
            task_id = item.get("id")
            if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 < task_id < 2**63:
                raise MalformedAction("id must be a positive integer (a task id)")
            return CancelTaskAction(task_id)
        if kind == "list_tasks":
            return ListTasksAction(_optional(item, "folder"))
        raise MalformedAction(f"type must be one of {', '.join(ACTION_TYPES)}, not {kind!r}")
    except MalformedAction as bad:
        return BadAction(f"actions[{index}]: {bad}")


def _schedule(item: dict[str, Any]) -> ScheduleAction:
    given = [(kind, item[kind]) for kind in _KINDS if item.get(kind) is not None]
    if len(given) != 1:
        raise MalformedAction("schedule needs exactly one of cron, every or at")
    [(kind, expression)] = given
    if not isinstance(expression, str) or not expression.strip():
        raise MalformedAction(f"{kind} must be a non-empty string")
    return ScheduleAction(
        kind=kind, expression=expression, prompt=_text(item, "prompt"), tz=_optional(item, "tz"),
        chat=_optional(item, "chat"), topic=_text(item, "topic", default=""),
        missed=_text(item, "missed", default="latest"), folder=_optional(item, "folder"),
    )  # fmt: skip


class MalformedAction(InvalidInput):
    """Why an action entry is malformed; :func:`parse_actions` turns it into a :class:`BadAction`, never raises it."""


def _text(item: dict[str, Any], key: str, *, empty: bool = False, default: str | None = None) -> str:
    value = item.get(key, default)
    if value is None and empty:
        return ""
    if not isinstance(value, str) or (not value.strip() and not empty and default is None):
        raise MalformedAction(f"{key} must be a non-empty string")
    return value


def _optional(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise MalformedAction(f"{key} must be a non-empty string or absent")
    return value


def _refs(value: object) -> tuple[AttachmentRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 10:
        raise MalformedAction("attachments must be a list of at most 10 {path, name} objects")
    refs = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise MalformedAction("each attachment needs a non-empty string path")
        if not isinstance(item.get("name"), str | None):
            raise MalformedAction("an attachment's name must be a string")
        refs.append(AttachmentRef(item["path"], item.get("name")))
    return tuple(refs)
