"""The input document an agent reads on stdin (SPEC §9), with arizuko-compatible field names.

The prompt is XML: flushed system messages, a ``<clock/>`` line, then ``<messages>`` with one ``<message>`` per
chat message; text and attribute values are escaped (``& < > "``). Secrets travel only inside this document:
``repr()`` of an :class:`AgentInput` hides them, and nothing here logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["AgentInput", "PromptAttachment", "PromptMessage", "render_prompt", "xml_escape"]

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def xml_escape(text: str) -> str:
    """Escape ``& < > "`` for XML text and double-quoted attribute values."""
    return text.translate(_ESCAPES)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptAttachment:
    """A file that came with a message: saved where the agent can open it (``path``), or the ``error`` that kept it
    from being saved (then there is no path)."""

    name: str
    mime: str
    size: int | None = None  # bytes
    path: str = ""  # as the agent sees it: /home/agent/inbox/<seq>-<name> in a container
    error: str = ""

    def render(self) -> str:
        """``<attachment name=… mime=… size=… path=…/>``, with ``error=…`` instead of ``path`` when it failed."""
        attributes = [("name", self.name), ("mime", self.mime)]
        if self.size is not None:
            attributes.append(("size", str(self.size)))
        attributes.append(("path", self.path) if self.path else ("error", self.error or "not received"))
        rendered = " ".join(f'{name}="{xml_escape(value)}"' for name, value in attributes)
        return f"<attachment {rendered}/>"


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptMessage:
    """One chat message as the agent sees it."""

    sender: str
    sender_id: str
    time: datetime  # aware; rendered in UTC with a real 'Z'
    chat_id: str
    platform: str
    text: str
    verb: str = "message"
    thread: str = ""
    reply_to: str = ""
    attachments: Sequence[PromptAttachment] = ()

    def render(self) -> str:
        """``<message …>escaped text</message>``; verb, thread and reply_to only when they say something; the
        message's attachments as ``<attachment/>`` elements after the text."""
        attributes = [
            ("sender", self.sender),
            ("sender_id", self.sender_id),
            ("time", _utc(self.time)),
            ("chat_id", self.chat_id),
            ("platform", self.platform),
        ]
        if self.verb and self.verb != "message":
            attributes.append(("verb", self.verb))
        attributes += [(name, value) for name, value in (("thread", self.thread), ("reply_to", self.reply_to)) if value]
        rendered = " ".join(f'{name}="{xml_escape(value)}"' for name, value in attributes)
        files = "".join(attachment.render() for attachment in self.attachments)
        return f"<message {rendered}>{xml_escape(self.text)}{files}</message>"


def render_prompt(messages: Sequence[PromptMessage], *, now: datetime, system: Sequence[str] = ()) -> str:
    """The prompt: system messages (already rendered), a clock line, then the batch of messages in order."""
    clock = f'<clock time="{_utc(now)}" tz="UTC"/>'
    body = "".join(message.render() for message in messages)
    return "\n".join([*system, clock, f"<messages>{body}</messages>"])


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInput:
    """The whole input document of one run."""

    prompt: str
    chat_jid: str
    group_folder: str
    run_id: str
    session_id: str | None = None
    topic: str = ""
    assistant_name: str = ""
    channel_name: str = ""
    message_id: str = ""
    sender: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, object]:
        """The document as arizuko agents expect it: ``sessionId`` and ``secrets`` only when there are some."""
        document: dict[str, object] = {
            "prompt": self.prompt,
            "chatJid": self.chat_jid,
            "groupFolder": self.group_folder,
            "topic": self.topic,
            "assistantName": self.assistant_name,
            "channelName": self.channel_name,
            "messageId": self.message_id,
            "sender": self.sender,
            "runId": self.run_id,
        }
        if self.session_id:
            document["sessionId"] = self.session_id
        if self.secrets:
            document["secrets"] = dict(self.secrets)
        return document

    def to_bytes(self) -> bytes:
        """The document as the bytes written to the agent's stdin."""
        return json.dumps(self.to_dict(), ensure_ascii=False).encode()
