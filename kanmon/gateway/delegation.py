"""Delegations (SPEC §6.3): where a delegated message's copy waits, and following a message's answer through them.

A message routed to a folder other than its chat's owner (``@child …``, a hook's re-target) is settled in its tick
and recorded with that folder; a copy of it waits in the folder's inbox (:func:`delegation_jid`, id
:func:`delegation_id`), and the copy's run answers in the first chat. A delegate may hand the copy on again. Whoever
waits for a message's answer (``gated chat``, the OpenAI API) follows that chain (:func:`handled_as`): the answer is
complete once the last link has left ``new``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kanmon.message_ids import derived_id
from kanmon.store import Message

__all__ = ["MAX_HOPS", "GetMessage", "delegation_id", "delegation_jid", "handled_as"]

#: Copies followed at most: a folder path has at most 8 levels, so a longer chain is a loop of hooks' re-targets.
MAX_HOPS = 8

#: Reads one stored message by ``(chat_jid, id)`` (``Store.get_message`` through the caller's AsyncStore).
GetMessage = Callable[[str, str], Awaitable[Message | None]]


def delegation_jid(folder: str) -> str:
    """The inbox of a delegation to ``folder``."""
    return f"local:{folder}"


def delegation_id(seq: int) -> str:
    """The id of the copy of message ``seq`` in a delegate's inbox: derived, so a re-read batch delegates once."""
    return derived_id("dlg-", seq)


async def handled_as(get: GetMessage, chat_jid: str, message_id: str) -> list[Message]:
    """The message ``message_id`` of ``chat_jid`` as stored now, then each copy it was delegated as, in order, as
    stored now ([] when it is not stored). The last one is where the message waits (``status`` ``new``) or how its
    handling ended."""
    chain: list[Message] = []
    current = await get(chat_jid, message_id)
    while current is not None:
        chain.append(current)
        if current.status != "done" or current.routed_folder is None or len(chain) > MAX_HOPS:
            break  # waiting, or not routed (a command, a drop), or answered by its own folder: no copy
        current = await get(delegation_jid(current.routed_folder), delegation_id(current.seq))
    return chain
