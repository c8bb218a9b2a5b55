"""What a run takes and what its agent reads: the batch, and the input document built from it (SPEC §9).

A batch is consecutive waiting rows of one chat, topic and origin for one folder. Replies of a delegated batch (rows
in ``local:<folder>`` that carry ``forwarded_from``) go to the originating chat, never into the ``local:`` chat, so
a delegate's answer can never come back to it as a new message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from kanmon.container import AgentInput, PromptAttachment, PromptMessage, render_prompt
from kanmon.container.payload import xml_escape
from kanmon.folders import split_jid
from kanmon.gateway.heads import lane_of
from kanmon.gateway.privacy import Privacy, Redactor
from kanmon.queue import Lane
from kanmon.store import LaneHead, Message, SystemMessage
from kanmon.store.aio import AsyncStore

__all__ = ["Batch", "input_document", "notes_of", "peek_batch", "redactor", "render_note"]


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
        if lane_of(head) == lane:
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
    redact: Redactor | None = None,
) -> AgentInput:
    """The input document of a run over ``batch``; ``notes`` are rendered system messages for the prompt's head;
    ``files`` are the rows' received attachments by seq (:class:`kanmon.gateway.inbox.Inbox`, their files saved
    under names ``redact`` gave them); ``redact`` (:func:`redactor`) shows the agent pseudonyms instead of the real
    ids of the platforms it covers (:mod:`kanmon.gateway.privacy`; the batch itself keeps the real ones)."""
    last = batch.rows[-1]
    files = files or {}
    redact = redact or Redactor(None)
    messages = [_prompt_message(row, files.get(row.seq, ()), redact) for row in batch.rows]
    prompt = render_prompt(messages, now=now, system=[redact.text(note) for note in notes])
    reply_jid = batch.reply_jid
    return AgentInput(
        prompt=prompt,
        chat_jid=redact.chat(reply_jid),
        group_folder=folder,
        run_id=run_id,
        session_id=session_id,
        topic=redact.text(batch.head.topic),
        assistant_name=assistant_name,
        channel_name=split_jid(reply_jid)[0],
        message_id=redact.text(last.id),
        sender=redact.sender(_origin(last), last.sender),
        secrets=secrets,
    )


async def redactor(db: AsyncStore, batch: Batch, privacy: Privacy | None) -> Redactor:
    """The redaction of ``batch``'s input document: it knows every id the batch's rows of a redacted platform carry,
    and the people who wrote in their chats (a task's prompt may name one no row of the batch carries). Without
    redaction nothing is read and it changes nothing."""
    redact = Redactor(privacy)
    if privacy is None:
        return redact
    rows = [row for row in batch.rows if redact.applies(_origin(row))]
    for row in rows:
        redact.know_sender(row.sender)
        redact.know_sender(row.reply_to_sender)
        redact.know_chat(row.chat_jid)
        redact.know_chat(row.forwarded_from)
    if rows:
        chats = sorted({_origin(row) for row in rows} | {row.chat_jid for row in rows})
        for person in await db.retrying(db.store.chat_senders, chats):
            redact.know_sender(person)
    return redact


def _origin(row: Message) -> str:
    """The chat ``row`` comes from: the one it was forwarded from (a delegation), else its own."""
    return row.forwarded_from or row.chat_jid


def render_note(origin: str, event: str, body: str) -> str:
    """A system message as the prompt shows it: ``<system origin=… event=…>body</system>``."""
    return f'<system origin="{xml_escape(origin)}" event="{xml_escape(event)}">{xml_escape(body)}</system>'


def notes_of(messages: Sequence[SystemMessage]) -> list[str]:
    """Queued system messages, rendered."""
    return [render_note(note.origin, note.event, note.body) for note in messages]


def _prompt_message(row: Message, files: Sequence[PromptAttachment], redact: Redactor) -> PromptMessage:
    origin = _origin(row)
    if redact.active:
        # the path is the file's, saved under a redacted name already (Inbox.receive's rename)
        files = [replace(file, name=redact.text(file.name), error=redact.text(file.error)) for file in files]
    sender_id = redact.sender(origin, row.sender)
    return PromptMessage(
        sender=redact.text(redact.name(origin, row.sender, row.sender_name)) if row.sender_name else sender_id,
        sender_id=sender_id,
        time=row.timestamp,
        chat_id=redact.chat(origin),
        platform=split_jid(origin)[0],
        text=redact.text(row.agent_text),
        verb=row.verb,
        thread=redact.text(row.routed_topic or row.topic),
        reply_to=redact.text(row.reply_to_id or ""),
        attachments=files,
    )
