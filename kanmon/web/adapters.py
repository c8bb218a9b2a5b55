"""The channel-adapter API (SPEC §11), compatible with arizuko's adapters: register, ingest, chats, channels.

An adapter (a Telegram bridge, a Discord bot, …) registers with the shared channel secret and gets a token of its
own; with that token it posts the messages it receives (``POST /v1/messages``) and kanmon posts replies back to its
``/send`` (:mod:`kanmon.gateway.adapters`).

What differs from arizuko, on purpose: registrations live in the ``channels`` table, so a token survives a restart
(arizuko's registry was in memory and every token died with gated); only a sha256 of the token is stored; a retried
message answers with the seq it already has instead of a bare ``ok``; ``web:`` and ``local:`` belong to the built-in
channels and cannot be claimed; and every body is validated before anything is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from kanmon.errors import InvalidInput
from kanmon.gateway import Gateway
from kanmon.store import Channel, NewMessage, StoreError
from kanmon.web.deps import WebConfig, accepting_writes, get_config, get_gateway
from kanmon.web.validation import storable_text

__all__ = ["RESERVED_PREFIXES", "router", "token_hash"]

logger = logging.getLogger(__name__)


router = APIRouter(prefix="/v1", tags=["channel adapters"])

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# a platform name and a colon, optionally narrowed further ("discord:guild-1:"); the JIDs it owns start with it
PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}:(?:[A-Za-z0-9_.@+-]{1,64}:){0,4}$")
RESERVED_PREFIXES = ("web:", "local:")  # the built-in channels' (kanmon.gateway.delivery.StoreReadChannel)
RESERVED_NAMES = frozenset({"web", "local"})
JID_RE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
VERB_RE = r"^[a-z][a-z0-9_.-]{0,63}$"
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
MAX_JSON_DEPTH = 16
MAX_JSON_ITEMS = 10_000

GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ConfigDep = Annotated[WebConfig, Depends(get_config)]
Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, scheme_name="bearer", description="the channel secret or an adapter token")),
]
T = TypeVar("T")


def token_hash(token: str) -> str:
    """What the ``channels`` table keeps of an adapter token: its sha256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------------------------ validation
def _json_value(value: T) -> T:
    """A JSON value every backend can store: storable strings, finite numbers, at most 16 levels and 10,000 items."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    items = 0
    while stack:
        node, depth = stack.pop()
        items += 1
        if depth > MAX_JSON_DEPTH or items > MAX_JSON_ITEMS:
            raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels or has over {MAX_JSON_ITEMS} items")
        if isinstance(node, str):
            storable_text(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError("contains a number that is not finite")
        elif isinstance(node, dict):
            for key, child in node.items():
                storable_text(str(key))
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return value


Text = Annotated[str, AfterValidator(storable_text)]
Short = Annotated[str, Field(max_length=512), AfterValidator(storable_text)]
MessageId = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(storable_text)]
Quote = Annotated[str, Field(max_length=64 * 1024), AfterValidator(storable_text)]


class _Body(BaseModel):
    # arizuko's adapters send fields kanmon does not use (attachment_mime, …): ignored, never an error
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


def _jid(value: str) -> str:
    if not JID_RE.match(value):
        raise ValueError("must not contain white space or control characters")
    return value


Jid = Annotated[str, Field(min_length=3, max_length=512), AfterValidator(storable_text), AfterValidator(_jid)]


# ------------------------------------------------------------------------------------------------ bodies
class RegisterBody(_Body):
    """An adapter introducing itself."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="Unique; registering it again rotates the token.")]
    url: Annotated[Text, Field(min_length=8, max_length=2048, description="Where kanmon POSTs `<url>/send`.")]
    jid_prefixes: Annotated[
        list[Annotated[Text, Field(max_length=128)]],
        Field(min_length=1, max_length=32, description="The JIDs it owns start with one of these (`telegram:`)."),
    ]
    capabilities: Annotated[
        dict[Annotated[Text, Field(max_length=64)], Any],
        Field(max_length=64, description="`{send_text, send_file, typing, …}`; `send_text: false` gets no replies."),
    ] = {}

    @field_validator("name")
    @classmethod
    def _not_reserved_name(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is the name of a built-in channel")
        return name

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname or not port_ok:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials (kanmon sends the channel secret itself)")
        if parts.query or parts.fragment or any(ch.isspace() for ch in url):
            raise ValueError("must have no query, fragment or white space (kanmon appends /send to it)")
        return url

    @field_validator("jid_prefixes")
    @classmethod
    def _prefixes(cls, prefixes: list[str]) -> list[str]:
        for prefix in prefixes:
            if prefix.startswith(RESERVED_PREFIXES):
                raise ValueError(f"{prefix!r} is reserved for the built-in {prefix.split(':')[0]} channel")
            if not PREFIX_RE.match(prefix):
                raise ValueError(f"{prefix!r} is not a JID prefix: expected a platform name ending with ':'")
        return list(dict.fromkeys(prefixes))

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, capabilities: dict[str, Any]) -> dict[str, Any]:
        return _json_value(capabilities)


class RegisterAnswer(BaseModel):
    ok: bool
    token: str = Field(description="The adapter's token (shown once; kanmon keeps only its hash).")


class InboundMessage(_Body):
    """A message an adapter received from its platform (arizuko's body)."""

    id: MessageId | None = Field(
        default=None, description="The platform's message id; a retry with the same id stores nothing new."
    )
    chat_jid: Jid
    sender: Short
    sender_name: Short = ""
    content: Annotated[Text, Field(max_length=1024 * 1024)] = Field(
        description="The text; may be empty only when there are attachments."
    )
    timestamp: Annotated[float | None, Field(ge=0, le=MAX_TIMESTAMP)] = Field(
        default=None, description="When the platform says it was sent, unix seconds; default: now."
    )
    topic: Short = Field(default="", description="The platform thread, if any.")
    verb: Annotated[str, Field(pattern=VERB_RE)] = "message"
    is_group: bool | None = None
    reply_to: Short | None = None
    reply_to_text: Quote | None = None
    reply_to_sender: Short | None = None
    attachments: Annotated[list[dict[str, Any]] | None, Field(max_length=64)] = None

    @field_validator("verb", mode="before")
    @classmethod
    def _default_verb(cls, verb: Any) -> Any:
        return "message" if verb == "" or verb is None else verb

    @field_validator("attachments")
    @classmethod
    def _attachments(cls, attachments: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if attachments is None else _json_value(attachments)

    @model_validator(mode="after")
    def _says_something(self) -> InboundMessage:
        if not self.content and not self.attachments:
            raise ValueError("content is empty and there are no attachments")
        return self


class MessageAnswer(BaseModel):
    ok: bool
    seq: int = Field(description="The message's place in the log (the same for a retried id).")
    id: str
    duplicate: bool = Field(description="True when this id was stored before: nothing new was stored.")


class ChatBody(_Body):
    """A chat an adapter knows about (its name, whether it is a group)."""

    chat_jid: Jid
    name: Short | None = None
    is_group: bool | None = None


class ChatAnswer(BaseModel):
    ok: bool
    chat_jid: str


class OkAnswer(BaseModel):
    ok: bool


class ChannelInfo(BaseModel):
    """A registered adapter, as listed (never its token or the token's hash)."""

    name: str
    url: str
    jid_prefixes: list[str]
    capabilities: dict[str, Any]
    registered_at: dt.datetime


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
    for channel in await _stored(gateway.store.list_channels):
        # every hash compared, none skipped: the time taken does not depend on which one matched
        if hmac.compare_digest(given, channel.token_hash.encode()):
            found = channel
    if found is None:
        raise _unauthorized("unknown adapter token: it was rotated or the adapter deregistered; register again")
    return found


Adapter = Annotated[Channel, Depends(current_adapter)]
SecretChecked = [Depends(channel_secret)]
Writes = [Depends(accepting_writes)]


async def _stored(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call in a thread; an unreachable store is 503 (retry later), a refused value 400."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except InvalidInput as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except StoreError as exc:
        logger.warning("adapter API: store unavailable: %s", exc)
        raise HTTPException(status_code=503, detail="the store is unavailable; retry shortly") from None


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
    responses={401: {"description": "Missing or wrong channel secret."}, 403: {"description": "No secret set."}},
)
async def register(body: RegisterBody, gateway: GatewayDep) -> RegisterAnswer:
    token = secrets.token_urlsafe(32)
    channel = Channel(
        name=body.name,
        url=body.url,
        token_hash=token_hash(token),
        jid_prefixes=body.jid_prefixes,
        capabilities=body.capabilities,
        registered_at=dt.datetime.now(dt.UTC),
    )
    await _stored(gateway.store.save_channel, channel)
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
    await _stored(gateway.store.remove_channel, adapter.name)
    logger.info("channel adapter %s deregistered", adapter.name)
    return OkAnswer(ok=True)


@router.get(
    "/channels",
    dependencies=SecretChecked,
    summary="The registered adapters (never their tokens).",
    responses={401: {"description": "Missing or wrong channel secret."}, 403: {"description": "No secret set."}},
)
async def list_channels(gateway: GatewayDep) -> list[ChannelInfo]:
    channels = await _stored(gateway.store.list_channels)
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
    await _stored(gateway.store.ensure_chat, body.chat_jid, **fields)
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
    result = await _stored_put(gateway, new)
    return MessageAnswer(ok=True, seq=result[0], id=result[1], duplicate=not result[2])


async def _stored_put(gateway: Gateway, new: NewMessage) -> tuple[int, str, bool]:
    try:
        result = await gateway.put_message(new)
    except InvalidInput as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except StoreError as exc:
        logger.warning("adapter API: store unavailable: %s", exc)
        raise HTTPException(status_code=503, detail="the store is unavailable; retry shortly") from None
    return result.message.seq, result.message.id, result.created


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
    await _stored(gateway.store.ensure_chat, body.chat_jid, **fields)
    return ChatAnswer(ok=True, chat_jid=body.chat_jid)
