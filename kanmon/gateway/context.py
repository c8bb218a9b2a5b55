"""What the layers share for one batch: the store, the queue seam, the bot's names, and per-batch caches.

The loop builds one :class:`LayerContext` per tick and passes it with each message, in seq order. Routes and groups
are read once per batch (not once per message) and re-read after a command changes them (``/approve``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kanmon.clock import Clock
from kanmon.folders import family_parent
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.decisions import QueueControl
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.registry import Registry
from kanmon.message_ids import derived_id
from kanmon.router import ImpulseConfig, Route
from kanmon.store import AllowEntry, Chat, Group, Message, NewMessage, Store

__all__ = ["GATEWAY_ORIGIN", "LayerContext", "may_route", "nothing_batched", "reply_id"]

logger = logging.getLogger(__name__)


def nothing_batched() -> None:
    """The :attr:`LayerContext.before_write` of a context that batches nothing: there is nothing to record first."""


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
    # The gateway's cached configuration (kanmon.gateway.registry), refreshed before the batch; None: read the store.
    registry: Registry | None = field(default=None, repr=False)
    # Where the rows the layers write go: the loop stores them with the batch's decisions, in one transaction. None
    # (route test, unit tests): each is stored at once.
    outbox: list[NewMessage] | None = field(default=None, repr=False)
    # Sender authorisation (kanmon.gateway.auth); the default lets everyone through.
    auth: AuthConfig = field(default_factory=AuthConfig)
    # The injected clock (the loop's); None: the store's (kanmon.store.base.StoreBase.clock).
    clock: Clock | None = field(default=None, repr=False)
    # The zone a group's days are counted in unless it names its own (``scheduler.timezone``): ``/status`` usage.
    timezone: str = "UTC"
    # Lifecycle hooks (kanmon.gateway.hooks): /new tells session_reset.
    hooks: Hooks = field(default=NO_HOOKS, repr=False)
    # The sticky settings the layers changed, by chat JID (only the fields changed; None clears one): with an
    # outbox, the loop stores them with the batch's decisions, in the same transaction (:meth:`steer`).
    steering: dict[str, dict[str, str | None]] = field(default_factory=dict, repr=False)
    # Called by a layer right before it commits a change of its own to the store at once (a command's route, reset or
    # task): the loop records the batch's earlier rows first, so a batch read again after a failure starts with that
    # layer's row and no earlier row is decided by the change.
    before_write: Callable[[], None] = field(default=nothing_batched, repr=False)
    _routes: list[Route] | None = field(default=None, repr=False)
    _groups: dict[str, Group] | None = field(default=None, repr=False)
    _chats: dict[str, Chat | None] = field(default_factory=dict, repr=False)

    def routes(self) -> list[Route]:
        """The routes table as router values, in ``(seq, id)`` order (read once per batch)."""
        if self._routes is None:
            if self.registry is not None:
                self._routes = self.registry.routes
            else:
                self._routes = [
                    Route(id=r.id, seq=r.seq, match=r.match, target=r.target, impulse_config=r.impulse_config)
                    for r in self.store.list_routes()
                ]
        return self._routes

    def groups(self) -> dict[str, Group]:
        """Registered groups by folder (read once per batch)."""
        if self._groups is None:
            if self.registry is not None:
                self._groups = self.registry.groups
            else:
                self._groups = {group.folder: group for group in self.store.list_groups()}
        return self._groups

    def allowlist(self) -> list[AllowEntry]:
        """The sender allowlist (the registry's cached copy, else read from the store)."""
        if self.registry is not None:
            return self.registry.allow
        return self.store.list_allow()

    def group(self, folder: str) -> Group | None:
        """The registered group ``folder``, or None."""
        return self.groups().get(folder)

    def parent_of(self, folder: str) -> str | None:
        """The parent of group ``folder``: its ``parent`` setting, else its folder path's parent (``corp/eng``'s is
        ``corp``); None for a root group. The one rule for the group family: commands, onboarding and agent
        actions all ask here."""
        group = self.group(folder)
        return family_parent(folder, group.parent if group is not None else None)

    def is_root(self, folder: str) -> bool:
        """Whether ``folder`` is a root group (no parent): only those run /status, /approve, /reject and /pair,
        hear of chats waiting for onboarding, and act on any chat or task."""
        return self.parent_of(folder) is None

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

    def steer(self, jid: str, **changes: str | None) -> None:
        """Change the sticky settings (``sticky_group``, ``sticky_topic``) of the chat ``jid`` for the rows after this
        one. With an outbox they are stored with the batch's decisions: a batch that never commits (a crash, a lost
        database) is read again with the settings it began with, so no earlier row of it follows the new ones.
        Without one (route test, unit tests) they are stored at once."""
        if self.outbox is None:
            self.store.ensure_chat(jid, **changes)
            self._chats.pop(jid, None)
            return
        self.steering.setdefault(jid, {}).update(changes)
        chat = self.chat(jid) or Chat(jid=jid)
        group, topic = changes.get("sticky_group", chat.sticky_group), changes.get("sticky_topic", chat.sticky_topic)
        self._chats[jid] = replace(chat, sticky_group=group, sticky_topic=topic)

    def forget(self) -> None:
        """Drop the cached routes and groups (a command changed them): re-read them from the store itself."""
        self._routes = None
        self._groups = None
        self.registry = None

    def now(self) -> dt.datetime:
        """The current time, aware: from the injected clock when there is one, else from the store's."""
        return (self.clock or self.store.clock).now()

    def is_bot_name(self, name: str) -> bool:
        """True when ``name`` (without ``@``) addresses this bot."""
        return not self.bot_names or name.lower() in self.bot_names

    def reply(self, message: Message, text: str) -> NewMessage:
        """Answer ``message`` with an outbound row; the id is derived, so answering twice stores it once."""
        new = NewMessage(
            chat_jid=message.chat_jid,
            id=reply_id(message),
            content=text,
            direction="out",
            origin=GATEWAY_ORIGIN,
            topic=message.topic,
            reply_to_id=message.id,
            delivered=read_from_store(message.chat_jid),
        )
        self.write(new)
        return new

    def write(self, new: NewMessage) -> None:
        """Store a row the layers or the loop write for this batch: into the outbox, or at once without one."""
        if self.outbox is not None:
            self.outbox.append(new)
        else:
            self.store.put_message(new, now=self.now())


def reply_id(message: Message) -> str:
    """The id of the gateway's answer to ``message`` (unique within the chat, stable across re-reads)."""
    return derived_id("gw-", "reply", message.id)


def may_route(owner: str, folder: str) -> bool:
    """True when ``owner`` may send a chat to ``folder``: the owner itself or one of its descendants."""
    return folder == owner or folder.startswith(owner + "/")
