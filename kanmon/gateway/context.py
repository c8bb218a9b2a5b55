"""What the layers share for one batch: the store, the queue seam, the bot's names, and per-batch caches.

The loop builds one :class:`LayerContext` per tick and passes it with each message, in seq order. Routes and groups
are read once per batch (not once per message) and re-read after a command changes them (``/approve``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kanmon.gateway.decisions import QueueControl
from kanmon.router import ImpulseConfig, Route
from kanmon.store import Chat, Group, Message, NewMessage, Store

__all__ = ["GATEWAY_ORIGIN", "LayerContext", "may_route", "reply_id"]

logger = logging.getLogger(__name__)

GATEWAY_ORIGIN = "gateway"


@dataclass
class LayerContext:
    """Everything a layer may consult or change; ``dry_run`` makes the sticky and command layers only describe."""

    store: Store
    queue: QueueControl
    # Lowercase names the bot answers to in `@name /cmd` and `/cmd@name`; empty accepts any name (the adapter
    # already decided the message was for us).
    bot_names: frozenset[str] = frozenset()
    dry_run: bool = False
    # The configured impulse defaults (SPEC §7) that a route's impulse_config is merged over.
    impulse: ImpulseConfig = field(default_factory=ImpulseConfig)
    _routes: list[Route] | None = field(default=None, repr=False)
    _groups: dict[str, Group] | None = field(default=None, repr=False)
    _chats: dict[str, Chat | None] = field(default_factory=dict, repr=False)

    def routes(self) -> list[Route]:
        """The routes table as router values, in ``(seq, id)`` order (read once per batch)."""
        if self._routes is None:
            self._routes = [
                Route(id=r.id, seq=r.seq, match=r.match, target=r.target, impulse_config=r.impulse_config)
                for r in self.store.list_routes()
            ]
        return self._routes

    def groups(self) -> dict[str, Group]:
        """Registered groups by folder (read once per batch)."""
        if self._groups is None:
            self._groups = {group.folder: group for group in self.store.list_groups()}
        return self._groups

    def group(self, folder: str) -> Group | None:
        """The registered group ``folder``, or None."""
        return self.groups().get(folder)

    def chat(self, jid: str) -> Chat | None:
        """The chat ``jid`` (its sticky settings), read once per batch unless a layer changed it."""
        if jid not in self._chats:
            self._chats[jid] = self.store.get_chat(jid)
        return self._chats[jid]

    def know_chats(self, jids: list[str]) -> None:
        """Read the chats of a whole batch in one query (the loop calls this before the layers)."""
        found = self.store.get_chats(jids)
        for jid in jids:
            self._chats.setdefault(jid, found.get(jid))

    def forget_chat(self, jid: str) -> None:
        """Drop the cached chat ``jid`` (a layer changed it)."""
        self._chats.pop(jid, None)

    def forget(self) -> None:
        """Drop the cached routes and groups (a command changed them)."""
        self._routes = None
        self._groups = None

    def is_bot_name(self, name: str) -> bool:
        """True when ``name`` (without ``@``) addresses this bot."""
        return not self.bot_names or name.lower() in self.bot_names

    def reply(self, message: Message, text: str) -> Message:
        """Answer ``message`` with an outbound row; the id is derived, so answering twice stores it once."""
        new = NewMessage(
            chat_jid=message.chat_jid,
            id=reply_id(message),
            content=text,
            direction="out",
            origin=GATEWAY_ORIGIN,
            topic=message.topic,
            reply_to_id=message.id,
        )
        result = self.store.put_message(new)
        logger.debug("gateway reply chat=%s to=%s created=%s", message.chat_jid, message.id, result.created)
        return result.message


def reply_id(message: Message) -> str:
    """The id of the gateway's answer to ``message`` (unique within the chat, stable across re-reads)."""
    return f"gw-reply-{message.id}"


def may_route(owner: str, folder: str) -> bool:
    """True when ``owner`` may send a chat to ``folder``: the owner itself or one of its descendants."""
    return folder == owner or folder.startswith(owner + "/")
