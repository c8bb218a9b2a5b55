"""What the web chat's transcript says about a message's files (issue 14): name, mime, size, and where the page
gets the bytes (:mod:`kanmon.web.webchat_files` serves them behind the chat's token)."""

from __future__ import annotations

from pydantic import BaseModel

from kanmon.gateway.attachments import read_attachments
from kanmon.store import Message

__all__ = ["ChatAttachment", "chat_attachments"]


class ChatAttachment(BaseModel):
    """A file of a transcript message."""

    name: str
    mime: str
    size: int | None
    url: str | None = None  # relative to the server: GET it with the chat's token; None when kanmon keeps no copy


def chat_attachments(row: Message) -> list[ChatAttachment]:
    """The files of ``row`` as the transcript shows them; ``url`` only for those whose bytes the row carries."""
    folder = row.chat_jid.removeprefix("web:")
    return [
        ChatAttachment(
            name=found.name,
            mime=found.mime,
            size=found.size,
            url=f"/web/{folder}/files/{row.seq}/{index}" if found.data is not None else None,
        )
        for index, found in enumerate(read_attachments(row.attachments))
    ]
