"""The values the Store takes and returns: frozen dataclasses, never SQLAlchemy rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Channel",
    "Chat",
    "Group",
    "Message",
    "NewMessage",
    "PutResult",
    "Route",
    "Run",
    "RunStatus",
    "Session",
    "SystemMessage",
]

Direction = Literal["in", "out"]
RunStatus = Literal["starting", "running", "ok", "error", "timeout", "stopped", "reclaimed"]
#: The statuses of a run in flight: its agent may still be at work, and its session is its own.
IN_FLIGHT: tuple[RunStatus, ...] = ("starting", "running")


@dataclass(frozen=True, kw_only=True)
class NewMessage:
    """A message to append. ``id`` is generated when absent; ``timestamp`` defaults to now (aware, stored in UTC)."""

    chat_jid: str
    content: str
    direction: Direction = "in"
    id: str | None = None
    sender: str = ""
    sender_name: str = ""
    timestamp: dt.datetime | None = None
    verb: str = "message"
    topic: str = ""
    reply_to_id: str | None = None
    reply_to_text: str | None = None
    reply_to_sender: str | None = None
    attachments: list[dict[str, Any]] | None = None
    forwarded_from: str | None = None
    is_bot_message: bool = False
    origin: str = ""
    run_id: str | None = None
    output_index: int | None = None
    platform_message_id: str | None = None
    #: An outbound row whose chat's readers read the store itself (web:, local:): storing it is its delivery,
    #: so it is stored ``sent`` rather than ``pending`` for a deliverer.
    delivered: bool = False


@dataclass(frozen=True, kw_only=True)
class Message:
    """A stored message; ``seq`` is its position in the one log."""

    seq: int
    id: str
    chat_jid: str
    direction: Direction
    sender: str
    sender_name: str
    content: str
    timestamp: dt.datetime
    received_at: dt.datetime
    verb: str
    topic: str
    reply_to_id: str | None
    reply_to_text: str | None
    reply_to_sender: str | None
    attachments: list[dict[str, Any]] | None
    forwarded_from: str | None
    is_bot_message: bool
    origin: str
    run_id: str | None
    output_index: int | None
    delivery_status: str | None
    delivery_attempts: int
    deliver_after: dt.datetime | None
    delivery_error: str | None
    platform_message_id: str | None
    status: str | None
    routed_folder: str | None = None
    routed_topic: str | None = None
    routed_content: str | None = None

    def copy_as(self, *, chat_jid: str, id: str, **overrides: Any) -> NewMessage:
        """This message posted again as a new inbound row (a delegation, an approved onboarding): the same sender
        (and whether it is a bot), origin, time, verb, topic, reply-to and attachments, with ``overrides`` on top.
        The origin is what the allowlist and the operators list judge a sender by: a user's text posted again by
        kanmon is still that user's."""
        fields: dict[str, Any] = {
            "content": self.content,
            "origin": self.origin,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "is_bot_message": self.is_bot_message,
            "timestamp": self.timestamp,
            "verb": self.verb,
            "topic": self.topic,
            "reply_to_id": self.reply_to_id,
            "reply_to_text": self.reply_to_text,
            "reply_to_sender": self.reply_to_sender,
            "attachments": self.attachments,
        }
        return NewMessage(chat_jid=chat_jid, id=id, **{**fields, **overrides})

    @property
    def agent_text(self) -> str:
        """What the agent is shown: the routed content (a prefix stripped) when the loop recorded one."""
        return self.content if self.routed_content is None else self.routed_content


@dataclass(frozen=True)
class PutResult:
    """What ``put_message`` did: the stored row, and whether this call created it."""

    message: Message
    created: bool


@dataclass(frozen=True, kw_only=True)
class Chat:
    """A chat's routing state and the per-chat cursor of what its agent has consumed."""

    jid: str
    channel: str | None = None
    name: str | None = None
    is_group: bool = False
    sticky_group: str | None = None
    sticky_topic: str | None = None
    agent_cursor: int = 0
    attempts: int = 0
    retry_at: dt.datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Group:
    """A registered agent folder."""

    folder: str
    name: str = ""
    added_at: dt.datetime | None = None
    parent: str | None = None
    container_config: dict[str, Any] = field(default_factory=dict)
    impulse_config: str | None = None


@dataclass(frozen=True, kw_only=True)
class Route:
    """A row of the routes table, as stored (parsing and matching belong to kanmon.router)."""

    id: int
    seq: int
    match: str
    target: str
    impulse_config: str | None


@dataclass(frozen=True, kw_only=True)
class Session:
    """The agent session of ``(group_folder, topic)``."""

    group_folder: str
    topic: str
    session_id: str
    updated_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Run:
    """One agent run (a ``session_log`` row)."""

    id: str
    instance: str
    group_folder: str
    topic: str
    chat_jid: str
    runtime: str
    status: RunStatus
    started_at: dt.datetime
    session_id: str | None = None
    container: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    message_count: int = 0
    output_count: int = 0
    ended_at: dt.datetime | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class SystemMessage:
    """A note queued for a group's next prompt."""

    id: int
    group_folder: str
    origin: str
    event: str
    body: str
    created_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Channel:
    """A registered channel adapter (the token itself is never stored, only its hash)."""

    name: str
    url: str
    token_hash: str
    jid_prefixes: list[str]
    capabilities: dict[str, Any]
    registered_at: dt.datetime
