"""The web chat's topics and who is asking (SPEC §11; issue 18 item 3): list the topics, name or rename one, ``me``.

A topic keeps its id (``t-…``; ``""`` is the chat's main topic) for ever: messages, the agent's session and the event
stream use it. Its name is only what people read, stored beside it (:meth:`Store.name_topic`), so renaming a topic
changes nothing else. ``me`` tells the page who it speaks as (the same rule the messages it sends are stored with),
so it can set its own messages apart from other people's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kanmon.gateway import Gateway
from kanmon.text import one_line
from kanmon.web.auth_first import AuthFirstRoute
from kanmon.web.deps import WebConfig, accepting_writes, get_config, get_gateway
from kanmon.web.validation import storable_text
from kanmon.web.webchat import TOPIC_PATTERN, sender_of
from kanmon.web.webchat_auth import AUTH_RESPONSES, WebGroup
from kanmon.web.webchat_examples import ME_EXAMPLE, TOPIC_NAME_EXAMPLE, TOPICS_EXAMPLE

__all__ = ["MAX_NAME_CHARS", "Me", "TopicList", "TopicName", "TopicSummary", "router"]

router = APIRouter(tags=["web chat"], route_class=AuthFirstRoute)

MAX_NAME_CHARS = 80

GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ConfigDep = Annotated[WebConfig, Depends(get_config)]


class TopicSummary(BaseModel):
    """One conversation of the chat."""

    topic: str = Field(description="Its id, for ever (what `stream?topic=` and a message's `topic` use).")
    name: str = Field(default="", description='What it was named ("": never named; show the id).')
    last_seq: int = Field(description="Its last message's seq (0: named, nothing said yet).")
    last_time: str = Field(description="ISO 8601, UTC: when its last message was sent (or it was named)")
    messages: int


class TopicList(BaseModel):
    """The chat's topics: named ones without messages yet first, then the most recently active."""

    model_config = ConfigDict(json_schema_extra={"examples": [TOPICS_EXAMPLE]})

    topics: list[TopicSummary]


class TopicName(BaseModel):
    """A topic's new name; an empty name forgets it (the topic is shown by its id again)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TOPIC_NAME_EXAMPLE]})

    topic: str = Field(pattern=TOPIC_PATTERN, description='The topic\'s id ("" is the main topic).')
    name: str = Field(max_length=4 * MAX_NAME_CHARS, description=f"At most {MAX_NAME_CHARS} characters once trimmed.")

    @field_validator("name")
    @classmethod
    def _one_line(cls, name: str) -> str:
        name = one_line(storable_text(name))
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"a topic's name has at most {MAX_NAME_CHARS} characters")
        return name


class Me(BaseModel):
    """Who this browser speaks as: the ``sender`` (and name) its messages are stored with."""

    model_config = ConfigDict(json_schema_extra={"examples": [ME_EXAMPLE]})

    sender: str
    name: str


@router.get(
    "/web/{folder:path}/topics",
    summary="The topics of the group's web chat with their names: named ones not yet used first, then the most"
    " recently active.",
    responses=AUTH_RESPONSES,
)
async def topics(group: WebGroup, gateway: GatewayDep) -> TopicList:
    found = await gateway.db.once(gateway.store.chat_topics, f"web:{group.folder}")
    return TopicList(
        topics=[
            TopicSummary(
                topic=t.topic, name=t.name, last_seq=t.last_seq, last_time=t.last_at.isoformat(), messages=t.messages
            )
            for t in found
        ]
    )


@router.put(
    "/web/{folder:path}/topic-names",
    summary="Name or rename a topic of the group's web chat (its id stays); an empty name forgets the name.",
    dependencies=[Depends(accepting_writes)],
    responses={**AUTH_RESPONSES, 503: {"description": "Shutting down."}},
)
async def name_topic(group: WebGroup, body: TopicName, gateway: GatewayDep) -> TopicName:
    await gateway.db.once(
        gateway.store.name_topic, f"web:{group.folder}", body.topic, body.name, now=gateway.clock.now()
    )
    return body


@router.get(
    "/web/{folder:path}/me",
    summary="Who this client speaks as in the group's web chat (the sender its messages are stored with).",
    responses=AUTH_RESPONSES,
)
async def me(group: WebGroup, request: Request, config: ConfigDep) -> Me:
    sender, name = sender_of(request, config)
    return Me(sender=sender, name=name)
