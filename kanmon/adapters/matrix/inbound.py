"""Matrix room events as kanmon messages: the body of ``POST /v1/messages`` (SPEC §11) for one event, or nothing.

The mapping (Matrix client-server spec, "Instant messaging", "Threading", "Rich replies", "User and room mentions"):

- a room is a chat, ``matrix:<room id>``; the event id is the message id, so a repeated post is a no-op in gated;
- a thread (``rel_type: m.thread``) is a topic: the thread root's event id. The main timeline is topic ``""``;
- a rich reply (``m.in_reply_to``, unless it is only a thread's fallback) fills ``reply_to``; its quoted fallback
  (``> `` lines before a blank line) is cut from the text;
- a message that mentions the bot (``m.mentions``, or its id or name in the text of a client that does not send
  ``m.mentions``) has verb ``mention``; an edit (``m.replace``) ``edit``, with the new text; a reaction ``react``;
- media (``m.image``, ``m.file``, ``m.audio``, ``m.video``, stickers) go in ``attachments`` with their ``mxc://``
  URI and a URL on this adapter that serves the file to gated with the channel secret; the text is the caption,
  or ``[image: name]`` when there is none (the command layer skips such a placeholder, SPEC §6.2);
- skipped: the bot's own events, notices (``m.notice`` is how bots talk: answering one loops two bots), state
  events, redactions, and what it cannot read (encrypted events).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["Bot", "Room", "inbound_body", "joined_at", "strip_reply_fallback"]

MEDIA_KINDS = {"m.image": "image", "m.file": "file", "m.audio": "audio", "m.video": "video"}


@dataclass(frozen=True, slots=True)
class Bot:
    """Who the adapter is on Matrix, and where it serves media."""

    user_id: str
    display_name: str = ""
    media_url: str = ""  # this adapter's base URL; media are served at <media_url>/media/<server>/<id>


@dataclass(frozen=True, slots=True)
class Room:
    """What the adapter knows of a room when an event of it arrives."""

    room_id: str
    name: str = ""
    is_group: bool = True
    member_names: Mapping[str, str] = field(default_factory=dict)  # user id -> display name


def joined_at(events: list[dict[str, Any]], user_id: str) -> int:
    """The index just past ``user_id``'s own join in ``events`` (0 when it did not join among them).

    Events before the bot joined a room are history it was not there for; they are not ingested.
    """
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("type") == "m.room.member" and event.get("state_key") == user_id:
            content = _dict(event.get("content"))
            previous = _dict(_dict(event.get("unsigned")).get("prev_content"))
            if content.get("membership") == "join" and previous.get("membership") != "join":
                return index + 1
    return 0


def inbound_body(event: dict[str, Any], room: Room, bot: Bot) -> dict[str, Any] | None:
    """The ``/v1/messages`` body for ``event`` of ``room``, or None for an event kanmon does not ingest."""
    sender = event.get("sender")
    event_id = event.get("event_id")
    if not isinstance(sender, str) or not isinstance(event_id, str) or sender == bot.user_id:
        return None
    content = _dict(event.get("content"))
    kind = event.get("type")
    fields: dict[str, Any] | None
    if kind == "m.reaction":
        relation = _dict(content.get("m.relates_to"))
        key = relation.get("key")
        if not isinstance(key, str) or not key:
            return None
        fields = {"content": key, "verb": "react", "reply_to": relation.get("event_id")}
    elif kind in {"m.room.message", "m.sticker"}:
        fields = _message_fields(content, kind, bot)
        if fields is None:
            return None
    else:
        return None
    timestamp = event.get("origin_server_ts")
    return {
        "id": event_id,
        "chat_jid": f"matrix:{room.room_id}",
        "sender": sender,
        "sender_name": room.member_names.get(sender) or sender,
        "timestamp": timestamp / 1000 if isinstance(timestamp, int | float) and timestamp > 0 else None,
        "is_group": room.is_group,
        "topic": _thread_root(content),
        **{key: value for key, value in fields.items() if value is not None},
    }


def _message_fields(content: dict[str, Any], kind: str, bot: Bot) -> dict[str, Any] | None:
    relation = _dict(content.get("m.relates_to"))
    verb = "message"
    if relation.get("rel_type") == "m.replace":  # an edit: the new text is in m.new_content
        content = {**_dict(content.get("m.new_content")), "m.relates_to": relation}
        verb = "edit"
    msgtype = "m.sticker" if kind == "m.sticker" else content.get("msgtype")
    body = content.get("body")
    if msgtype == "m.notice" or not isinstance(body, str):
        return None
    fields: dict[str, Any] = {}
    reply_to = _reply_to(relation)
    if reply_to is not None:
        fields["reply_to"] = reply_to
        body = strip_reply_fallback(body)
    if msgtype in MEDIA_KINDS or msgtype == "m.sticker":
        media = _attachment(content, MEDIA_KINDS.get(str(msgtype), "sticker"), bot)
        if media is None:
            return None
        fields["attachments"] = [media]
        caption = body if content.get("filename") not in (None, body) else ""
        body = caption or f"[{media['kind']}: {media['filename']}]"
    elif msgtype == "m.emote":
        body = f"* {body}"
    if verb == "message" and _mentions(content, body, bot):
        verb = "mention"
    fields.update(content=body, verb=verb)
    return fields


def _reply_to(relation: dict[str, Any]) -> str | None:
    """The event a message really replies to (not a thread's fallback reply)."""
    reply = _dict(relation.get("m.in_reply_to")).get("event_id")
    if not isinstance(reply, str):
        return None
    if relation.get("rel_type") == "m.thread" and relation.get("is_falling_back") is True:
        return None
    return reply


def _thread_root(content: dict[str, Any]) -> str:
    relation = _dict(content.get("m.relates_to"))
    root = relation.get("event_id")
    return root if relation.get("rel_type") == "m.thread" and isinstance(root, str) else ""


def strip_reply_fallback(body: str) -> str:
    """``body`` without the ``> <@user> quoted text`` lines older clients put before a reply."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    rest = lines[index:]
    if rest and rest[0] == "":
        rest = rest[1:]
    return "\n".join(rest)


def _mentions(content: dict[str, Any], body: str, bot: Bot) -> bool:
    """Whether the message addresses the bot: ``m.mentions`` when the client sent it, else the text."""
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        users = mentions.get("user_ids")
        return isinstance(users, list) and bot.user_id in users
    if bot.user_id in body:
        return True
    formatted = content.get("formatted_body")
    if isinstance(formatted, str) and f"matrix.to/#/{bot.user_id}" in formatted:
        return True
    name = bot.display_name or bot.user_id[1:].partition(":")[0]
    return bool(name) and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", body, re.IGNORECASE) is not None


def _attachment(content: dict[str, Any], kind: str, bot: Bot) -> dict[str, Any] | None:
    mxc = content.get("url")
    if not isinstance(mxc, str):  # an encrypted file's URL is in content.file: it cannot be read without keys
        return None
    parts = urlsplit(mxc)
    if parts.scheme != "mxc" or not parts.netloc or not parts.path.strip("/"):
        return None
    info = _dict(content.get("info"))
    filename = content.get("filename") or content.get("body") or parts.path.strip("/")
    media: dict[str, Any] = {
        "kind": kind,
        "mxc": mxc,
        "url": f"{bot.media_url}/media/{quote(parts.netloc, safe='')}/{quote(parts.path.strip('/'), safe='')}",
        "filename": str(filename),
    }
    if isinstance(info.get("mimetype"), str):
        media["mime"] = info["mimetype"]
    if isinstance(info.get("size"), int):
        media["size"] = info["size"]
    return media


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
