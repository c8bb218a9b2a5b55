"""The adapter's side of the protocol, as OpenAPI ``webhooks``: the requests kanmon makes to a channel adapter.

Declared here, served nowhere: these are the operations an adapter must implement, described from what the code
sends (:func:`kanmon.gateway.adapters.adapter_body`, :meth:`kanmon.gateway.adapters.HttpDeliverer._post`,
:mod:`kanmon.gateway.adapter_files`, :func:`kanmon.gateway.typing.adapter_ping`). tests/e2e/test_openapi.py checks
each body model against a body kanmon really sent. docs/adapter-protocol.md says the same in prose, with a minimal
adapter.

* ``send``: ``POST <url>/send``, one reply per request, in seq order per chat, with ``Authorization: Bearer <channel
  secret>`` and ``Idempotency-Key`` (also in the body). 2xx: taken; 408, 425, 429, 5xx or no answer within
  ``delivery.request_timeout``: tried again (3 quick tries, then with backoff until ``delivery.deadline``; with
  ``Retry-After``, no quick try and no attempt before it, at most 15 min away); a 3xx: not followed, tried again
  the same way (no quick tries) until the adapter registers its new URL; any other 4xx: refused for good, the row
  fails at once.
* ``typing``: ``POST <url>/typing`` while a run works on one of the adapter's chats, only to an adapter registered with
  ``capabilities.typing: true``; best effort, never retried.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SendAnswer", "SendAttachment", "SendBody", "TypingBody", "webhooks"]

webhooks = APIRouter(tags=["adapter side (kanmon calls these)"])

SIGNED_URL = "http://gated.example:8080/media/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class SendAttachment(BaseModel):
    """A file of an agent's reply (:mod:`kanmon.gateway.adapter_files`); both spellings of name and type are sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": f"{SIGNED_URL}?exp=1767225600&sig=3q2-7w",
                    "filename": "chart.png",
                    "name": "chart.png",
                    "mime": "image/png",
                    "mime_type": "image/png",
                    "size": 5,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "data": "iVBORw0=",
                }
            ]
        }
    )

    url: str = Field(description="A signed download link (GET /media/{sha256}), valid `media.url_ttl` seconds.")
    filename: str
    name: str = Field(description="The same as `filename`.")
    mime: str
    mime_type: str = Field(description="The same as `mime`.")
    size: int = Field(ge=0, description="Bytes.")
    sha256: str = Field(description="Of the bytes, lower-case hex.")
    data: str | None = Field(
        default=None, description="The bytes, base64; only for files of at most `media.inline_bytes` (256 KiB)."
    )


class SendBody(BaseModel):
    """One reply for the adapter to post to its platform (:func:`kanmon.gateway.adapters.adapter_body`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "chat_jid": "telegram:12345",
                    "content": "Here is the **chart** you asked for.",
                    "format": "markdown",
                    "reply_to": "4711",
                    "thread_id": None,
                    "idempotency_key": "kanmon-1042",
                    "attachments": [SendAttachment.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
                }
            ]
        }
    )

    chat_jid: str = Field(description="The chat to post in: one of the JIDs under the adapter's prefixes.")
    content: str = Field(description="The reply's text (may be empty when it carries files).")
    format: str = Field(description='Always `"markdown"`: the agent writes Markdown; convert as the platform needs.')
    reply_to: str | None = Field(description="The platform id of the message this answers, if any.")
    thread_id: str | None = Field(description="The platform thread (the message's `topic`), or null.")
    idempotency_key: str = Field(
        description="The same on every retry of this reply, even after a restart of gated: post a key seen before once."
    )
    attachments: list[SendAttachment | dict[str, Any]] | None = Field(
        default=None, description="Only when the reply carries files."
    )


class SendAnswer(BaseModel):
    """What the adapter answers when it took the reply (any 2xx; the body is optional)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True, "id": "98765"}]})

    ok: bool = True
    id: str | int | None = Field(
        default=None, description="The platform's id of the posted message; kept as the row's platform_message_id."
    )


class TypingBody(BaseModel):
    """ "Working" on (while a run works on the chat, every `delivery.typing_interval` seconds) or off (once, at its
    first reply or its end) (:func:`kanmon.gateway.typing.adapter_ping`)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"chat_jid": "telegram:12345", "thread_id": None, "on": True}]}
    )

    chat_jid: str
    thread_id: str | None
    on: bool


ChannelSecret = Annotated[
    str, Header(description="`Bearer <http.channel_secret>`: check it, so that only kanmon can post replies.")
]


@webhooks.post(
    "send",
    summary="kanmon → adapter: POST <url>/send, one reply to post on the platform.",
    status_code=200,
    responses={
        408: {"description": "Retried (as are 425, 429 and every 5xx, a timeout and a refused connection)."},
        425: {"description": "Retried."},
        429: {"description": "Retried; not before its `Retry-After` (seconds or a date; at most 15 min), if any."},
        "5XX": {"description": "Retried: 3 quick tries, then with backoff until `delivery.deadline` (24 h)."},
        "3XX": {"description": "Not followed (the request carries the secret); retried until registered anew."},
        "4XX": {"description": "Any other 4xx: refused; the reply fails at once and is not retried."},
    },
)
def send(
    body: SendBody,
    authorization: ChannelSecret,
    idempotency_key: Annotated[str, Header(description="The body's `idempotency_key`.")],
) -> SendAnswer:
    """Replies of one chat come one at a time, in order: the next is sent only once this one was answered 2xx (or
    failed for good). The same reply may come again (a retry after a lost answer, or after gated restarted
    mid-request): recognise it by its idempotency key and answer 2xx without posting it twice."""
    raise NotImplementedError  # a declaration: the adapter implements it


@webhooks.post(
    "typing",
    summary="kanmon → adapter: POST <url>/typing, the agent is working (only with capabilities.typing: true).",
    status_code=200,
    response_class=Response,
    responses={"default": {"description": "Any answer is fine: never retried; a failure only costs the indicator."}},
)
def typing(body: TypingBody, authorization: ChannelSecret) -> None:
    """Show (or stop showing) the platform's typing indicator in ``chat_jid``; answer quickly (each request may take at
    most the interval)."""
    raise NotImplementedError  # a declaration: the adapter implements it
