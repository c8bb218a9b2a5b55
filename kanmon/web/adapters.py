"""The channel-adapter API (SPEC §11), compatible with arizuko's adapters: register, ingest, chats, channels.

An adapter (a Telegram bridge, a Discord bot, …) registers with the shared channel secret and gets a token of its
own; with that token it posts the messages it receives (``POST /v1/messages``) and kanmon posts replies back to its
``/send`` (:mod:`kanmon.gateway.adapters`).

What differs from arizuko, on purpose: registrations live in the ``channels`` table, so a token survives a restart
(arizuko's registry was in memory and every token died with gated); only a sha256 of the token is stored; a retried
message answers with the seq it already has instead of a bare ``ok``; ``web:`` and ``local:`` belong to the built-in
channels and ``daemon:`` to the outboxes of daemon targets, and none can be claimed; a JID prefix belongs to one
adapter at a time (arizuko let a second adapter claim one, and replies went to whichever wrote into the chat last); and
every body is validated before anything is written (:mod:`kanmon.web.adapter_bodies`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kanmon import redaction
from kanmon.gateway import Gateway
from kanmon.store import Channel, NewMessage
from kanmon.web.adapter_bodies import (
    RESERVED_PREFIXES,
    ChannelInfo,
    ChatAnswer,
    ChatBody,
    InboundMessage,
    MessageAnswer,
    OkAnswer,
    RegisterAnswer,
    RegisterBody,
)
from kanmon.web.auth_first import AuthFirstRoute
from kanmon.web.deps import WebConfig, accepting_writes, get_config, get_gateway
from kanmon.web.tokens import new_token, token_hash

__all__ = ["RESERVED_PREFIXES", "router"]

logger = logging.getLogger(__name__)


router = APIRouter(prefix="/v1", tags=["channel adapters"], route_class=AuthFirstRoute)

GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ConfigDep = Annotated[WebConfig, Depends(get_config)]
Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, scheme_name="bearer", description="the channel secret or an adapter token")),
]
T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ auth
def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def channel_secret(credentials: Credentials, config: ConfigDep) -> None:
    """Requests signed with the shared channel secret (403 while none is configured)."""
    if not config.channel_secret:
        raise HTTPException(status_code=403, detail="channel registration is disabled: set http.channel_secret")
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing Authorization: Bearer <channel secret>")
    # both sides hashed first: equal lengths, so the comparison's time says nothing about the secret's length
    given = token_hash(credentials.credentials).encode()
    if not hmac.compare_digest(given, token_hash(config.channel_secret).encode()):
        raise _unauthorized("wrong channel secret")


async def current_adapter(credentials: Credentials, gateway: GatewayDep) -> Channel:
    """The registered adapter whose token the request carries (401 otherwise)."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing Authorization: Bearer <adapter token> (POST /v1/channels/register gives one)")
    given = token_hash(credentials.credentials).encode()
    found: Channel | None = None
    for channel in await gateway.db.once(gateway.store.list_channels):
        # every hash compared, none skipped: the time taken does not depend on which one matched
        if hmac.compare_digest(given, channel.token_hash.encode()):
            found = channel
    if found is None:
        raise _unauthorized("unknown adapter token: it was rotated or the adapter deregistered; register again")
    redaction.remember(credentials.credentials)  # a real token, perhaps issued before a restart: never to be logged
    return found


Adapter = Annotated[Channel, Depends(current_adapter)]
SecretChecked = [Depends(channel_secret)]
Writes = [Depends(accepting_writes)]


def _check_jid(jid: str, adapter: Channel) -> None:
    prefixes = tuple(adapter.jid_prefixes)
    if not jid.startswith(prefixes):
        raise HTTPException(
            status_code=400,
            detail=f"chat_jid {jid!r} does not start with one of this adapter's prefixes ({', '.join(prefixes)})",
        )
    if jid in prefixes:
        raise HTTPException(status_code=400, detail=f"chat_jid {jid!r} names no chat after its prefix")


# ------------------------------------------------------------------------------------------------ routes
@router.post(
    "/channels/register",
    dependencies=[*Writes, *SecretChecked],
    summary="Register (or re-register) a channel adapter; answers its token.",
    responses={
        401: {"description": "Missing or wrong channel secret."},
        403: {"description": "No secret set."},
        409: {"description": "A prefix overlaps one another adapter owns (equal, or one starts with the other)."},
    },
)
async def register(body: RegisterBody, gateway: GatewayDep) -> RegisterAnswer:
    """A prefix belongs to one adapter at a time: 409 naming the owner when another adapter's overlaps."""
    token, hashed = new_token()
    channel = Channel(
        name=body.name,
        url=body.url,
        token_hash=hashed,
        jid_prefixes=body.jid_prefixes,
        capabilities=body.capabilities,
        registered_at=gateway.clock.now(),
    )
    await gateway.db.once(gateway.store.save_channel, channel)
    logger.info("channel adapter %s registered at %s for %s", body.name, body.url, ", ".join(body.jid_prefixes))
    gateway.wake()  # replies that waited for this adapter go now
    return RegisterAnswer(ok=True, token=token)


@router.post(
    "/channels/deregister",
    dependencies=Writes,
    summary="Remove the calling adapter; its token stops working, its pending replies wait for a new registration.",
    responses={401: {"description": "Missing or unknown adapter token."}},
)
async def deregister(adapter: Adapter, gateway: GatewayDep) -> OkAnswer:
    await gateway.db.once(gateway.store.remove_channel, adapter.name)
    logger.info("channel adapter %s deregistered", adapter.name)
    return OkAnswer(ok=True)


@router.get(
    "/channels",
    dependencies=SecretChecked,
    summary="The registered adapters (never their tokens).",
    responses={401: {"description": "Missing or wrong channel secret."}, 403: {"description": "No secret set."}},
)
async def list_channels(gateway: GatewayDep) -> list[ChannelInfo]:
    channels = await gateway.db.once(gateway.store.list_channels)
    return [
        ChannelInfo(
            name=channel.name,
            url=channel.url,
            jid_prefixes=list(channel.jid_prefixes),
            capabilities=dict(channel.capabilities),
            registered_at=channel.registered_at,
        )
        for channel in channels
    ]


@router.post(
    "/messages",
    dependencies=Writes,
    summary="Store a message an adapter received; idempotent on (chat_jid, id).",
    responses={
        400: {"description": "The JID is not one of this adapter's."},
        401: {"description": "Missing or unknown adapter token."},
    },
)
async def post_message(body: InboundMessage, adapter: Adapter, gateway: GatewayDep) -> MessageAnswer:
    _check_jid(body.chat_jid, adapter)
    fields: dict[str, Any] = {"channel": adapter.name}
    if body.is_group is not None:
        fields["is_group"] = body.is_group
    # the channel of record first: a reply to this message must find its way back to this adapter
    await gateway.db.once(gateway.store.ensure_chat, body.chat_jid, **fields)
    timestamp = None if body.timestamp is None else dt.datetime.fromtimestamp(body.timestamp, dt.UTC)
    new = NewMessage(
        chat_jid=body.chat_jid,
        content=body.content,
        id=body.id,
        sender=body.sender,
        sender_name=body.sender_name,
        timestamp=timestamp,
        verb=body.verb,
        topic=body.topic,
        reply_to_id=body.reply_to,
        reply_to_text=body.reply_to_text,
        reply_to_sender=body.reply_to_sender,
        attachments=body.attachments,
        origin=f"adapter:{adapter.name}",
    )
    result = await gateway.put_message(new)
    return MessageAnswer(ok=True, seq=result.message.seq, id=result.message.id, duplicate=not result.created)


@router.post(
    "/chats",
    dependencies=Writes,
    summary="Tell kanmon about a chat (its name, whether it is a group); it becomes this adapter's.",
    responses={
        400: {"description": "The JID is not one of this adapter's."},
        401: {"description": "Missing or unknown adapter token."},
    },
)
async def post_chat(body: ChatBody, adapter: Adapter, gateway: GatewayDep) -> ChatAnswer:
    _check_jid(body.chat_jid, adapter)
    fields: dict[str, Any] = {"channel": adapter.name}
    if body.name is not None:
        fields["name"] = body.name
    if body.is_group is not None:
        fields["is_group"] = body.is_group
    await gateway.db.once(gateway.store.ensure_chat, body.chat_jid, **fields)
    return ChatAnswer(ok=True, chat_jid=body.chat_jid)
