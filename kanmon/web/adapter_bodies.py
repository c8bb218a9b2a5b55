"""The bodies of the channel-adapter API (SPEC §11) and the checks no JSON schema can state.

Every body is validated before anything is written: text every backend can store (no NUL, no lone surrogate),
finite numbers, bounded JSON, JID prefixes that are a platform name and a colon and never a built-in channel's.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.config import JsonDict

from kanmon.folders import PLATFORM_PATTERN
from kanmon.gateway.attachments import attachment_problem
from kanmon.gateway.channels import STORE_READ_PREFIXES, store_read_channels
from kanmon.gateway.dispatch import DAEMON_PREFIX
from kanmon.message_ids import DERIVED_PREFIXES, derived_id_problem
from kanmon.store.text import storable
from kanmon.web.validation import storable_text

__all__ = [
    "RESERVED_PREFIXES",
    "ChannelInfo",
    "ChatAnswer",
    "ChatBody",
    "InboundMessage",
    "MessageAnswer",
    "OkAnswer",
    "RegisterAnswer",
    "RegisterBody",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# a platform name and a colon, optionally narrowed further ("discord:guild-1:"); the JIDs it owns start with it
PREFIX_RE = re.compile(rf"^{PLATFORM_PATTERN}:(?:[A-Za-z0-9_.@+-]{{1,64}}:){{0,4}}$")
RESERVED_PREFIXES = (*STORE_READ_PREFIXES, DAEMON_PREFIX)  # the built-in channels and the outboxes of daemon targets
RESERVED_NAMES = frozenset(channel.name for channel in store_read_channels())
JID_RE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
VERB_RE = r"^[a-z][a-z0-9_.-]{0,63}$"
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
MAX_JSON_DEPTH = 16
MAX_JSON_ITEMS = 10_000
IS_GROUP = (
    "Send it: true for a chat more than one person can write in (group, channel, room of more than two), false only"
    " for a one-to-one chat with the bot. Sender authorisation offers DM pairing codes only where it is false;"
    " absent keeps the stored value, which starts false (direct)."
)
T = TypeVar("T")
#: What the schema says of an inbound message's ``attachments`` (the checks are :func:`attachment_problem`'s; other
#: keys are kept as they are, and names kanmon does not read are not an error).
INBOUND_ATTACHMENTS: dict[str, Any] = {
    "anyOf": [
        {
            "type": "array",
            "maxItems": 64,
            "items": {
                "type": "object",
                "title": "InboundAttachment",
                "properties": {
                    "name": {"type": "string", "description": "The file name (or `filename`)."},
                    "filename": {"type": "string"},
                    "mime": {"type": "string", "description": "The media type (or `mime_type`)."},
                    "mime_type": {"type": "string"},
                    "size": {"type": "integer", "minimum": 0, "description": "Bytes, as the platform says."},
                    "url": {"type": "string", "description": "http(s): fetched by gated when a run takes it."},
                    "data": {"type": "string", "description": "The bytes, base64 (instead of `url`)."},
                },
                "additionalProperties": True,
            },
        },
        {"type": "null"},
    ]
}


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


def _own_id(value: str) -> str:
    problem = derived_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


#: An adapter's message id: never one of the ids gated derives for its own rows (kanmon.message_ids)
MessageId = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(storable_text), AfterValidator(_own_id)]
Quote = Annotated[str, Field(max_length=64 * 1024), AfterValidator(storable)]
#: What people wrote (a message, a name, a quote): a NUL or a lone surrogate the platform let through is stored as
#: U+FFFD, as the store does with every text (kanmon.store.text), never refused: the adapter has no other copy of
#: it to send, and a 422 lost the message for good (an outside review). Ids and JIDs are still refused.
Prose = Annotated[str, AfterValidator(storable)]


class _Body(BaseModel):
    # arizuko's adapters send fields kanmon does not use (attachment_mime, …): ignored, never an error
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


def _jid(value: str) -> str:
    if not JID_RE.match(value):
        raise ValueError("must not contain white space or control characters")
    return value


Jid = Annotated[str, Field(min_length=3, max_length=512), AfterValidator(storable_text), AfterValidator(_jid)]


# ------------------------------------------------------------------------------------------------ bodies
REGISTER_EXAMPLE: JsonDict = {
    "name": "telegram",
    "url": "http://127.0.0.1:8091",
    "jid_prefixes": ["telegram:"],
    "capabilities": {"send_text": True, "send_file": True, "typing": True},
}


class RegisterBody(_Body):
    """An adapter introducing itself."""

    model_config = ConfigDict(json_schema_extra={"examples": [REGISTER_EXAMPLE]})

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="Unique; registering it again rotates the token.")]
    url: Annotated[Text, Field(min_length=8, max_length=2048, description="Where kanmon POSTs `<url>/send`.")]
    jid_prefixes: Annotated[
        list[Annotated[Text, Field(max_length=128)]],
        Field(min_length=1, max_length=32, description="The JIDs it owns start with one of these (`telegram:`)."),
    ]
    capabilities: Annotated[
        dict[Annotated[Text, Field(max_length=64)], Any],
        Field(
            max_length=64,
            description=(
                "`{send_text, send_file, typing, …}`; `send_text: false` gets no replies; `typing: true` gets"
                " `POST <url>/typing` `{chat_jid, thread_id, on}` while a run works on one of its chats."
            ),
        ),
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
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ok": True, "token": "Jq2k1p9X3v0sQ-5f8W7zYb6cR4tUe2iLm0nAo9dGh1E"}]}
    )
    ok: bool
    token: str = Field(description="The adapter's token (shown once; kanmon keeps only its hash).")


class InboundMessage(_Body):
    """A message an adapter received from its platform (arizuko's body)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "4711",
                    "chat_jid": "telegram:12345",
                    "sender": "telegram:user:99",
                    "sender_name": "Ada",
                    "content": "What does the chart say?",
                    "timestamp": 1796040000,
                    "topic": "",
                    "is_group": False,
                    "reply_to": None,
                    "attachments": [{"name": "chart.png", "mime": "image/png", "size": 5, "data": "iVBORw0="}],
                }
            ]
        }
    )

    id: MessageId | None = Field(
        default=None,
        description=(
            "The platform's message id; a retry with the same id stores nothing new. Ids starting with "
            f"{', '.join(f'`{prefix}`' for prefix in DERIVED_PREFIXES)} are kanmon's own (422)."
        ),
    )
    chat_jid: Jid
    sender: Short
    sender_name: Annotated[Prose, Field(max_length=512)] = ""
    content: Annotated[Prose, Field(max_length=1024 * 1024)] = Field(
        description="The text; may be empty only when there are attachments."
    )
    timestamp: Annotated[float | None, Field(ge=0, le=MAX_TIMESTAMP)] = Field(
        default=None, description="When the platform says it was sent, unix seconds; default: now."
    )
    topic: Short = Field(default="", description="The platform thread, if any.")
    verb: Annotated[str, Field(pattern=VERB_RE)] = "message"
    is_group: bool | None = Field(default=None, description=IS_GROUP)
    reply_to: Short | None = None
    reply_to_text: Quote | None = None
    reply_to_sender: Annotated[Prose, Field(max_length=512)] | None = None
    attachments: Annotated[
        list[dict[str, Any]] | None, Field(max_length=64), WithJsonSchema(INBOUND_ATTACHMENTS, mode="validation")
    ] = Field(
        default=None,
        description=(
            "Files: `name`, `mime`, `size`, and `url` (http or https, fetched by gated when a run takes the message)"
            " or `data` (base64); other keys are kept as they are."
        ),
    )

    @field_validator("verb", mode="before")
    @classmethod
    def _default_verb(cls, verb: Any) -> Any:
        return "message" if verb == "" or verb is None else verb

    @field_validator("attachments")
    @classmethod
    def _attachments(cls, attachments: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for item in attachments or ():
            problem = attachment_problem(item)
            if problem is not None:
                raise ValueError(problem)
        return None if attachments is None else _json_value(attachments)

    @model_validator(mode="after")
    def _says_something(self) -> InboundMessage:
        if not self.content and not self.attachments:
            raise ValueError("content is empty and there are no attachments")
        return self


class MessageAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ok": True, "seq": 1041, "id": "4711", "duplicate": False}]}
    )
    ok: bool
    seq: int = Field(description="The message's place in the log (the same for a retried id).")
    id: str
    duplicate: bool = Field(description="True when this id was stored before: nothing new was stored.")


class ChatBody(_Body):
    """A chat an adapter knows about (its name, whether it is a group)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"chat_jid": "telegram:-100200300", "name": "Support team", "is_group": True}]}
    )

    chat_jid: Jid
    name: Short | None = None
    is_group: bool | None = Field(default=None, description=IS_GROUP)


class ChatAnswer(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True, "chat_jid": "telegram:-100200300"}]})
    ok: bool
    chat_jid: str


class OkAnswer(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True}]})
    ok: bool


class ChannelInfo(BaseModel):
    """A registered adapter, as listed (never its token or the token's hash)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**REGISTER_EXAMPLE, "registered_at": "2026-11-30T12:00:00Z"}]}
    )

    name: str
    url: str
    jid_prefixes: list[str]
    capabilities: dict[str, Any]
    registered_at: dt.datetime
