"""What the web chat's transcript says about a message's files (issue 14): name, mime, size, and where the page
gets the bytes (:mod:`kanmon.web.webchat_files` serves them behind the chat's token)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from kanmon.gateway.attachments import read_attachments
from kanmon.store import Message

__all__ = ["ATTACHMENT_EXAMPLE", "INLINE_TYPES", "MAX_FILES", "ChatAttachment", "chat_attachments"]

MAX_FILES = 64  # a message's files are indexed below this (no channel carries more on one message)

#: Images a browser is shown as images, whoever sent them (no SVG: it can hold script); any other file is a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"})
ATTACHMENT_EXAMPLE: JsonDict = {
    "index": 0,
    "name": "chart.png",
    "mime": "image/png",
    "size": 5,
    "url": "/web/corp/media/r-8/0",
    "inline": True,
}


class ChatAttachment(BaseModel):
    """A file of a transcript message, the user's or the agent's: the page fetches ``url`` with the chat's token."""

    model_config = ConfigDict(json_schema_extra={"examples": [ATTACHMENT_EXAMPLE]})

    index: int = Field(description="Its place in the message's attachments.")
    name: str
    mime: str
    size: int | None
    url: str | None = Field(
        default=None, description="Relative to the server; GET it with the chat's token. None: kanmon keeps no copy."
    )
    inline: bool = Field(default=False, description="An image the page shows inline (else a download link).")


def chat_attachments(row: Message) -> list[ChatAttachment]:
    """The files of ``row`` as the transcript shows them; ``url`` only for those whose bytes the row carries."""
    folder = row.chat_jid.removeprefix("web:")
    return [
        ChatAttachment(
            index=index,
            name=found.name,
            mime=found.mime,
            size=found.size,
            url=f"/web/{folder}/files/{row.seq}/{index}" if found.data is not None else None,
            inline=found.data is not None and found.mime in INLINE_TYPES,
        )
        for index, found in enumerate(read_attachments(row.attachments))
    ]
