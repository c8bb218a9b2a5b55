"""A Telegram update as a kanmon message: the body of ``POST /v1/messages`` (SPEC §11, arizuko's fields).

* **Chats and ids.** The JID is ``telegram:<chat id>``; ``is_group`` is true for groups and supergroups. Telegram's
  message ids are per chat, and so is kanmon's ``(chat_jid, id)`` (arizuko lost messages keying them globally):
  a message's id is its ``message_id``, so a reply's ``reply_to`` is the id kanmon stored it under. An edit or a
  reaction is an event of its own, keyed by the update (``<message id>:edit:<update id>``), so a re-read update is
  the same row and two edits are two rows.
* **Topics.** A message in a forum topic has topic ``<message_thread_id>``, and replies go back to that topic.
  Only a real topic counts: Telegram also sets ``message_thread_id`` on replies in ordinary supergroups, which would
  split one group into a session per reply chain (hermes #13195). In a topic, Telegram makes every message a
  "reply" to the topic's creation; that is not a reply.
* **Text.** The text or caption, unchanged: a bot mention or ``/cmd@bot`` is for kanmon's command layer. A message
  that addresses the bot in a group (an @mention, a ``text_mention``, ``/cmd@bot``, or a reply to the bot) has verb
  ``mention``; edits are ``edit``, reactions ``react`` (their content the emoji), everything else ``message``.
* **Media.** Photos, documents, voice, audio, video, video notes, animations and stickers become ``attachments``
  (type, ``file_id``, mime type, name, size, duration, dimensions) and a placeholder before the caption (``[Photo]
  look``; the command layer skips it). Each attachment's ``url`` is this adapter's ``/files/<file_id>``, which
  fetches the file from the Bot API when asked (with gated's channel secret): the Bot API's own file URL carries
  the bot token in its path (no secret may be stored) and expires after an hour.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from telegram import (
    Chat,
    Message,
    MessageEntity,
    MessageReactionUpdated,
    ReactionType,
    ReactionTypeCustomEmoji,
    ReactionTypeEmoji,
    Update,
    User,
)

__all__ = ["ALLOWED_UPDATES", "chat_jid", "chat_name", "to_inbound"]

#: The update kinds the adapter asks for (``message_reaction`` is only sent when asked for by name).
ALLOWED_UPDATES = ("message", "edited_message", "message_reaction")
GROUP_TYPES = frozenset({Chat.GROUP, Chat.SUPERGROUP})


def chat_jid(chat_id: int) -> str:
    """The JID of a Telegram chat: ``telegram:<chat id>``."""
    return f"telegram:{chat_id}"


def chat_name(chat: Chat) -> str:
    """A chat's title, or a private chat's person."""
    return chat.title or chat.full_name or (f"@{chat.username}" if chat.username else str(chat.id))


def to_inbound(update: Update, me: User, files_url: str) -> dict[str, Any] | None:
    """The ``/v1/messages`` body for ``update``, or None for an update that carries nothing for an agent (a service
    message: a member joined, a pin, …). ``me`` is the bot; ``files_url`` this adapter's ``/files`` base URL."""
    if update.message_reaction is not None:
        return _reaction(update.message_reaction, update.update_id)
    edited = update.edited_message is not None
    message = update.edited_message or update.message
    if message is None:
        return None
    attachments, placeholder = _attachments(message, files_url)
    text = message.text or message.caption or ""
    content = f"{placeholder} {text}".strip() if placeholder else text
    if not content and not attachments:
        return None
    sender, sender_name = _sender(message.from_user, message.sender_chat)
    when = (message.edit_date if edited else None) or message.date
    body: dict[str, Any] = {
        "id": f"{message.message_id}:edit:{update.update_id}" if edited else str(message.message_id),
        "chat_jid": chat_jid(message.chat.id),
        "sender": sender,
        "sender_name": sender_name,
        "content": content,
        "timestamp": when.timestamp(),
        "topic": str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else "",
        "verb": "edit" if edited else ("mention" if _addresses(message, me) else "message"),
        "is_group": message.chat.type in GROUP_TYPES,
    }
    if attachments:
        body["attachments"] = attachments
    if edited:
        body["reply_to"] = str(message.message_id)  # which message the edit changes
    else:
        body.update(_reply(message))
    return body


# ------------------------------------------------------------------------------------------------ parts
def _sender(user: User | None, chat: Chat | None) -> tuple[str, str]:
    """``(sender, sender_name)``: a person, or the chat a message was sent on behalf of (anonymous admins)."""
    if chat is not None:
        return f"telegram:{chat.id}", chat_name(chat)
    if user is not None:
        return f"telegram:{user.id}", user.full_name or (f"@{user.username}" if user.username else str(user.id))
    return "telegram:unknown", ""


def _addresses(message: Message, me: User) -> bool:
    """Whether a group message is for the bot: it mentions it, runs ``/cmd@bot``, or replies to the bot."""
    if message.chat.type not in GROUP_TYPES:
        return False
    name = f"@{(me.username or '').lower()}"
    entities = {**message.parse_entities(), **message.parse_caption_entities()}
    for entity, text in entities.items():
        if entity.type == MessageEntity.MENTION and text.lower() == name:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == me.id:
            return True
        if entity.type == MessageEntity.BOT_COMMAND and text.lower().endswith(name):
            return True
    replied = _replied(message)
    return replied is not None and replied.from_user is not None and replied.from_user.id == me.id


def _replied(message: Message) -> Message | None:
    """The message this one replies to; not the topic's creation, which every message of a topic "replies" to."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


def _reply(message: Message) -> dict[str, Any]:
    replied = _replied(message)
    if replied is None:
        return {}
    _, placeholder = _attachments(replied, "")
    quoted = message.quote.text if message.quote is not None else None
    text = quoted or replied.text or replied.caption or placeholder or ""
    sender, _ = _sender(replied.from_user, replied.sender_chat)
    return {"reply_to": str(replied.message_id), "reply_to_text": text[: 64 * 1024], "reply_to_sender": sender}


def _reaction(reaction: MessageReactionUpdated, update_id: int) -> dict[str, Any]:
    new = [_emoji(kind) for kind in reaction.new_reaction]
    old = [_emoji(kind) for kind in reaction.old_reaction]
    content = " ".join(new) if new else "removed " + " ".join(old) if old else "removed"
    sender, sender_name = _sender(reaction.user, reaction.actor_chat)
    return {
        "id": f"{reaction.message_id}:react:{update_id}",
        "chat_jid": chat_jid(reaction.chat.id),
        "sender": sender,
        "sender_name": sender_name,
        "content": content,
        "timestamp": reaction.date.timestamp(),
        "verb": "react",
        "reply_to": str(reaction.message_id),
        "is_group": reaction.chat.type in GROUP_TYPES,
    }


def _emoji(kind: ReactionType) -> str:
    if isinstance(kind, ReactionTypeEmoji):
        return kind.emoji
    if isinstance(kind, ReactionTypeCustomEmoji):
        return f"custom:{kind.custom_emoji_id}"
    return str(kind.type)


def _attachments(message: Message, files_url: str) -> tuple[list[dict[str, Any]], str]:
    """The message's media as attachment metadata, and the placeholder that stands for them in the text."""
    found: list[tuple[str, Any, str]] = []
    if message.photo:
        found.append(("photo", message.photo[-1], "[Photo]"))  # the largest size
    for kind, label in (
        ("animation", "[GIF]"),
        ("document", "[Document]"),
        ("voice", "[Voice message]"),
        ("audio", "[Audio]"),
        ("video", "[Video]"),
        ("video_note", "[Video message]"),
        ("sticker", "[Sticker]"),
    ):
        media = getattr(message, kind, None)
        if media is not None and not (kind == "document" and message.animation is not None):
            name = getattr(media, "file_name", None)
            emoji = getattr(media, "emoji", None) if kind == "sticker" else None
            found.append((kind, media, f"[{label[1:-1]}: {name or emoji}]" if name or emoji else label))
    attachments = [_attachment(kind, media, files_url) for kind, media, _ in found]
    return attachments, " ".join(label for _, _, label in found)


def _attachment(kind: str, media: Any, files_url: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "file_id": media.file_id, "file_unique_id": media.file_unique_id}
    if kind == "photo":
        entry["mime_type"] = "image/jpeg"  # Telegram re-encodes every photo as JPEG
    for field in ("mime_type", "file_name", "file_size", "width", "height"):
        value = getattr(media, field, None)
        if value is not None:
            entry["filename" if field == "file_name" else field] = value
    duration = getattr(media, "_duration", None)  # a timedelta in PTB 22; the public property warns (int or not)
    if duration is not None:
        entry["duration"] = duration.total_seconds()
    if files_url:
        entry["url"] = f"{files_url.rstrip('/')}/{quote(media.file_id, safe='')}"
    return entry
