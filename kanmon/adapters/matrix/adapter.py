"""The Matrix adapter's main loop: log in, serve gated, sync rooms, hand every new event to gated in order.

The sync token is the adapter's cursor. A batch of events from ``/sync`` is posted to gated (``/v1/messages``,
retried while gated is down) room by room in timeline order, and only when all of it is stored is the batch's
``next_batch`` token saved; a restart syncs from the saved token, so events after it are never lost and events
before it were stored (a re-post after a crash between the two is a no-op in gated, keyed on the event id).

A limited timeline (more events than one sync returns) is completed from ``/messages`` back to the previous token,
so a flood or a long outage loses nothing either. On the very first start there is no token: the adapter takes the
current position and ingests nothing older. In a room it joins, events before its own join are history it was not
there for and are skipped (:func:`~kanmon.adapters.matrix.inbound.joined_at`).

Invites are accepted only from ``matrix.allowed_inviters`` (globs like ``@*:example.org``) and declined otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from nio import (
    AsyncClient,
    InviteMemberEvent,
    JoinError,
    MatrixRoom,
    MessageDirection,
    RoomGetEventResponse,
    RoomMessagesResponse,
    SyncResponse,
)

from kanmon.adapters.matrix.config import JID_PREFIX, MatrixConfig
from kanmon.adapters.matrix.gated import GatedClient
from kanmon.adapters.matrix.inbound import Bot, Room, inbound_body, joined_at, strip_reply_fallback
from kanmon.adapters.matrix.state import AdapterState
from kanmon.router.glob import glob_match

__all__ = ["SYNC_FILTER", "Syncer", "http_client", "inviter_allowed", "registration"]

logger = logging.getLogger(__name__)

CURSOR_KEY = "sync_token"  # the state file key of the last confirmed /sync position
# a long timeline per room, so a busy room rarely needs /messages; no presence or account data, which kanmon ignores
SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}
PAGE = 100
RETRY_MAX = 30.0


class Syncer:
    """Follows the bot's rooms through ``/sync`` and hands their events to gated."""

    def __init__(self, client: AsyncClient, gated: GatedClient, state: AdapterState, config: MatrixConfig) -> None:
        self._client = client
        self._gated = gated
        self._state = state
        self._config = config
        self.bot = Bot(user_id=config.user_id, media_url=config.url)
        self._chats: dict[str, tuple[str, bool]] = {}  # room id -> (name, is_group) as last told to gated
        self.synced = asyncio.Event()  # set after the first sync has been handled

    async def run(self, stopping: asyncio.Event) -> None:
        """Sync until ``stopping`` is set; every failure is logged and retried with a growing pause."""
        token = await asyncio.to_thread(self._state.get, CURSOR_KEY)
        full_state = True  # the first sync of a process brings every room's members (nio keeps them in memory)
        failures = 0
        while not stopping.is_set():
            try:
                answer = await self._client.sync(
                    timeout=self._config.sync_timeout_ms, sync_filter=SYNC_FILTER, since=token, full_state=full_state
                )
                if not isinstance(answer, SyncResponse):
                    raise RuntimeError(f"sync failed: {answer}")
                await self._handle(answer, since=token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad sync must not end the adapter: log, wait, sync again from the token
                failures += 1
                pause = min(RETRY_MAX, 0.5 * 2 ** min(failures, 8))
                logger.warning("matrix sync failed (%d in a row), again in %.1fs: %s", failures, pause, exc)
                await _sleep_unless(stopping, pause)
                continue
            failures = 0
            full_state = False
            token = answer.next_batch
            await asyncio.to_thread(self._state.put, CURSOR_KEY, token)  # only now: gated has all before it
            self.synced.set()

    async def _handle(self, answer: SyncResponse, *, since: str | None) -> None:
        await self._invites(answer)
        if since is None:
            logger.info("first start: syncing from now on (older events are not ingested)")
            return
        rooms = list(answer.rooms.join.items())
        await asyncio.gather(*(self._room(room_id, info, since) for room_id, info in rooms))

    async def _invites(self, answer: SyncResponse) -> None:
        for room_id, info in answer.rooms.invite.items():
            inviter = next(
                (
                    event.sender
                    for event in info.invite_state
                    if isinstance(event, InviteMemberEvent)
                    and event.state_key == self.bot.user_id
                    and event.membership == "invite"
                ),
                None,
            )
            if inviter is not None and inviter_allowed(self._config.allowed_inviters, inviter):
                joined = await self._client.join(room_id)
                if isinstance(joined, JoinError):
                    # Not the sync's failure: raising would sync again from the same token, with the same invite in
                    # it, and no room's message would be stored any more (the room emptied before the bot came, its
                    # server is gone). The invite is declined, so that it does not come back.
                    logger.warning("could not join %s (invited by %s): %s; declining it", room_id, inviter, joined)
                    await self._client.room_leave(room_id)
                    continue
                logger.info("joined %s: invited by %s", room_id, inviter)
            else:
                await self._client.room_leave(room_id)  # declining an invite is leaving the room
                logger.warning("declined the invite to %s from %s: not in matrix.allowed_inviters", room_id, inviter)

    async def _room(self, room_id: str, info: Any, since: str) -> None:
        events = [event.source for event in info.timeline.events if isinstance(getattr(event, "source", None), dict)]
        if info.timeline.limited and info.timeline.prev_batch:
            events = await self._backfill(room_id, info.timeline.prev_batch, since) + events
        events = events[joined_at(events, self.bot.user_id) :]
        room = self._describe(room_id)
        for event in events:
            body = inbound_body(event, room, self.bot)
            if body is None:
                continue
            await self._tell_chat(room)
            if "reply_to" in body and body.get("verb") != "react":
                body.update(await self._quoted(room_id, str(body["reply_to"])))
            await self._gated.post_message(body)

    async def _backfill(self, room_id: str, start: str, since: str) -> list[dict[str, Any]]:
        """The events between ``since`` and a limited timeline's ``start``, oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            page = await self._client.room_messages(
                room_id, start=start, end=since, direction=MessageDirection.back, limit=PAGE
            )
            if not isinstance(page, RoomMessagesResponse):
                raise RuntimeError(f"could not read the history of {room_id}: {page}")
            found.extend(e.source for e in page.chunk if isinstance(getattr(e, "source", None), dict))
            if not page.chunk or not page.end or page.end == start:
                break
            start = page.end
        if found:
            logger.info("room %s: %d events fetched that one sync did not carry", room_id, len(found))
        return list(reversed(found))

    def _describe(self, room_id: str) -> Room:
        room: MatrixRoom | None = self._client.rooms.get(room_id)
        if room is None:
            return Room(room_id=room_id)
        names = {user_id: user.display_name for user_id, user in room.users.items() if user.display_name}
        members = room.joined_count + room.invited_count
        return Room(room_id=room_id, name=room.display_name, is_group=members > 2, member_names=names)

    async def _tell_chat(self, room: Room) -> None:
        """Name the chat in gated when this process has not yet, or when its name or kind changed."""
        if self._chats.get(room.room_id) == (room.name, room.is_group):
            return
        await self._gated.post_chat(
            {"chat_jid": JID_PREFIX + room.room_id, "name": room.name, "is_group": room.is_group}
        )
        self._chats[room.room_id] = (room.name, room.is_group)

    async def _quoted(self, room_id: str, event_id: str) -> dict[str, Any]:
        """``reply_to_text`` and ``reply_to_sender`` of the event replied to (nothing if it cannot be read)."""
        answer = await self._client.room_get_event(room_id, event_id)
        if not isinstance(answer, RoomGetEventResponse):
            return {}
        source = getattr(answer.event, "source", {})
        content = source.get("content") if isinstance(source, dict) else None
        body = content.get("body") if isinstance(content, dict) else None
        quoted: dict[str, Any] = {"reply_to_sender": source.get("sender")} if isinstance(source, dict) else {}
        if isinstance(body, str):
            quoted["reply_to_text"] = strip_reply_fallback(body)[: 64 * 1024]
        return {key: value for key, value in quoted.items() if isinstance(value, str)}


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


def registration(config: MatrixConfig, name: str) -> dict[str, Any]:
    """The ``/v1/channels/register`` body of this adapter."""
    return {
        "name": name,
        "url": config.url,
        "jid_prefixes": [JID_PREFIX],
        "capabilities": {"send_text": True, "send_file": True, "threads": True, "typing": True},
    }


def http_client(timeout: float) -> httpx.AsyncClient:
    """The adapter's HTTP client for gated and attachments (no proxies from the environment)."""
    return httpx.AsyncClient(timeout=timeout, trust_env=False)


def inviter_allowed(patterns: Sequence[str], user_id: str) -> bool:
    """Whether ``user_id`` matches one of ``patterns`` (Go ``path.Match`` globs, as kanmon's routes use)."""
    return any(glob_match(pattern, user_id) for pattern in patterns)
