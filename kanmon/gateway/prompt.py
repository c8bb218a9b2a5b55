"""What a run takes and what its agent reads: the batch, and the input document built from it (SPEC §9).

A batch is consecutive waiting rows of one chat, topic and origin for one folder. Replies of a delegated batch (rows
in ``local:<folder>`` that carry ``forwarded_from``) go to the originating chat, never into the ``local:`` chat, so
a delegate's answer can never come back to it as a new message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from kanmon.container import AgentInput, PromptAttachment, PromptMessage, render_prompt
from kanmon.container.payload import xml_escape
from kanmon.folders import split_jid
from kanmon.queue import Lane, lane_for
from kanmon.store import LaneHead, Message, SystemMessage
from kanmon.store.aio import AsyncStore

__all__ = ["Batch", "input_document", "notes_of", "peek_batch", "render_note"]


@dataclass(frozen=True, slots=True)
class Batch:
    """The rows one run takes: consecutive waiting rows of one chat, topic and origin, for one folder."""

    head: LaneHead
    rows: Sequence[Message]

    @property
    def reply_jid(self) -> str:
        """Where the agent's replies go: the originating chat of a delegated batch, else the batch's chat."""
        return self.head.forwarded_from or self.head.chat_jid

    @property
    def reply_topic(self) -> str:
        """The topic of the replies: the thread the last message came from (a web conversation, a platform thread)."""
        return self.rows[-1].topic

    @property
    def reply_to(self) -> str | None:
        """The message a reply answers: the batch's last, unless the reply goes to another chat (a delegation)."""
        return self.rows[-1].id if self.reply_jid == self.head.chat_jid else None

    @property
    def seqs(self) -> list[int]:
        """The seqs of the rows."""
        return [row.seq for row in self.rows]


async def peek_batch(db: AsyncStore, lane: Lane, limit: int) -> Batch | None:
    """``lane``'s next batch as it stands, without taking it (a dead letter with no failed batch to point at)."""
    for head in await db.retrying(db.store.lane_heads, lane.folder):
        if lane_for(head.folder, head.chat_jid, head.topic) == lane:
            rows = await db.retrying(db.store.lane_batch, head, limit)
            if rows:
                return Batch(head, rows)
    return None


def input_document(
    batch: Batch,
    *,
    folder: str,
    run_id: str,
    session_id: str | None,
    notes: Sequence[str],
    now: datetime,
    assistant_name: str,
    secrets: Mapping[str, str],
    files: Mapping[int, Sequence[PromptAttachment]] | None = None,
) -> AgentInput:
    """The input document of a run over ``batch``; ``notes`` are rendered system messages for the prompt's head;
    ``files`` are the rows' received attachments by seq (:class:`kanmon.gateway.inbox.Inbox`)."""
    last = batch.rows[-1]
    files = files or {}
    prompt = render_prompt([_prompt_message(row, files.get(row.seq, ())) for row in batch.rows], now=now, system=notes)
    return AgentInput(
        prompt=prompt,
        chat_jid=batch.reply_jid,
        group_folder=folder,
        run_id=run_id,
        session_id=session_id,
        topic=batch.head.topic,
        assistant_name=assistant_name,
        channel_name=split_jid(batch.reply_jid)[0],
        message_id=last.id,
        sender=last.sender,
        secrets=secrets,
    )


def render_note(origin: str, event: str, body: str) -> str:
    """A system message as the prompt shows it: ``<system origin=… event=…>body</system>``."""
    return f'<system origin="{xml_escape(origin)}" event="{xml_escape(event)}">{xml_escape(body)}</system>'


def notes_of(messages: Sequence[SystemMessage]) -> list[str]:
    """Queued system messages, rendered."""
    return [render_note(note.origin, note.event, note.body) for note in messages]


def _prompt_message(row: Message, files: Sequence[PromptAttachment] = ()) -> PromptMessage:
    platform = split_jid(row.chat_jid)[0]
    return PromptMessage(
        sender=row.sender_name or row.sender,
        sender_id=row.sender,
        time=row.timestamp,
        chat_id=row.forwarded_from or row.chat_jid,
        platform=split_jid(row.forwarded_from)[0] if row.forwarded_from else platform,
        text=row.agent_text,
        verb=row.verb,
        thread=row.routed_topic or row.topic,
        reply_to=row.reply_to_id or "",
        attachments=files,
    )
