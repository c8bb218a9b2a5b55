"""The channels delivery sends through, and which of them owns a chat (SPEC §11).

A :class:`Deliverer` sends the outbound rows of the chats whose JIDs start with its prefixes; where two channels'
prefixes overlap, a chat belongs to its channel of record (``chats.channel``) when that one takes its JID, else to the
first that does: never to two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kanmon.store import Chat, Message

__all__ = [
    "STORE_READ_PREFIXES",
    "Deliverer",
    "StoreReadChannel",
    "exact",
    "overlap",
    "owner",
    "read_from_store",
    "store_read_channels",
    "takes",
]

#: Chats whose readers read the store itself (the web chat's page, a delegate's inbox): a row there is delivered by
#: being stored (kanmon.gateway.delivery).
STORE_READ_PREFIXES = ("web:", "local:")


class Deliverer(Protocol):
    """Sends outbound rows of the chats whose JIDs start with one of ``prefixes``.

    A deliverer that also has ``exact = True`` takes its ``prefixes`` as whole JIDs instead (a daemon's outbox
    ``daemon:hook`` is not ``daemon:hook-2``'s).
    """

    name: str
    prefixes: tuple[str, ...]

    async def send(self, message: Message) -> str | None:
        """Deliver ``message``; return the platform's message id if it gave one; raise DeliveryError if not taken.

        Any other exception counts as a transient DeliveryError (tried again after a backoff, until the deadline).
        """
        ...


class StoreReadChannel:
    """A channel whose readers read the store itself (``web:``, ``local:``): storing the row was the delivery."""

    def __init__(self, name: str, prefixes: Sequence[str]) -> None:
        self.name = name
        self.prefixes = tuple(prefixes)

    async def send(self, message: Message) -> str | None:
        """Nothing to send: the row is where its reader looks."""
        return None


def read_from_store(chat_jid: str) -> bool:
    """True for a chat whose readers read the store itself: storing a row there is its delivery."""
    return chat_jid.startswith(STORE_READ_PREFIXES)


def store_read_channels() -> list[StoreReadChannel]:
    """The built-in channels: one per prefix of :data:`STORE_READ_PREFIXES`, named after it (``web``, ``local``)."""
    return [StoreReadChannel(prefix.removesuffix(":"), [prefix]) for prefix in STORE_READ_PREFIXES]


def overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether a JID could start with a prefix of ``a`` and one of ``b`` (whole JIDs count as prefixes: may overlap)."""
    return any(x.startswith(y) or y.startswith(x) for x in a for y in b)


def exact(deliverer: Deliverer) -> bool:
    """Whether ``deliverer``'s prefixes are whole JIDs (see :class:`Deliverer`)."""
    return getattr(deliverer, "exact", False) is True


def takes(deliverer: Deliverer, jid: str) -> bool:
    """Whether ``jid`` is among the chats ``deliverer`` sends to."""
    return jid in deliverer.prefixes if exact(deliverer) else jid.startswith(deliverer.prefixes)


def owner(jid: str, chat: Chat | None, deliverers: Sequence[Deliverer]) -> Deliverer | None:
    """The channel that sends to ``jid``: its channel of record if that one takes it, else the first that does."""
    matching = [d for d in deliverers if takes(d, jid)]
    if chat is not None and chat.channel:
        for deliverer in matching:
            if deliverer.name == chat.channel:
                return deliverer
    return matching[0] if matching else None
