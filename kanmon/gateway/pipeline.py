"""One inbound message through owner resolution, sender authorisation and the four layers (SPEC §5.2, §6).

The loop calls :func:`process_message` for **every** message of a batch, in seq order, never only the last one of a
chat (arizuko ran the layers on the last message per tick, so ``[A, /ping]`` left A waiting and ``[/new, hello]``
never reset the session). Each call stands alone: the sticky setting or session reset one message makes is in the
store before the next message is looked at.

Gateway-written outbound rows (replies, command answers, status lines) come back :class:`Ignored`. Bot messages skip
the sticky, command and prefix layers: another bot's ``/new`` or ``@child`` is not a user's request.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

from kanmon.gateway.auth import refusal
from kanmon.gateway.context import GATEWAY_ORIGIN, LayerContext
from kanmon.gateway.decisions import Builtin, Decision, Ignored, Layer, Unowned
from kanmon.gateway.layers.commands import parse_command, run_command
from kanmon.gateway.layers.prefix import split_prefix
from kanmon.gateway.layers.routing import route_message
from kanmon.gateway.layers.sticky import apply_sticky, parse_sticky
from kanmon.gateway.owner import resolve_owner
from kanmon.store import Message

__all__ = ["probe_message", "process_batch", "process_message"]

logger = logging.getLogger(__name__)


def process_message(message: Message, ctx: LayerContext) -> Decision:
    """Decide what happens to one stored message; sticky and command effects (and their replies) are applied now."""
    if message.direction != "in":
        return Ignored(message, Layer.INPUT, "outbound row: written by kanmon, never routed again")
    owner = resolve_owner(ctx, message.chat_jid)
    if owner.folder is None:
        return Unowned(message, Layer.OWNER, owner.why)
    if not ctx.auth.everyone_allowed:
        refused = refusal(message, ctx.auth, ctx.allowlist(), owner.folder, ctx.chat(message.chat_jid))
        if refused is not None:
            return refused
    decision = _layers(message, ctx, owner.folder)
    logger.debug(
        "routed seq=%s layer=%s decision=%s why=%s",
        message.seq,
        decision.layer,
        type(decision).__name__,
        decision.why,
    )
    return decision


def process_batch(messages: list[Message], ctx: LayerContext) -> list[Decision]:
    """:func:`process_message` for each message, in seq order."""
    return [process_message(message, ctx) for message in sorted(messages, key=lambda m: m.seq)]


def _layers(message: Message, ctx: LayerContext, owner: str) -> Decision:
    # A bot's message, and a copy delegated from another chat (whose layers ran there), are only routed: a copy's
    # text is never a command or a sticky setting of the inbox, whatever it reads (an outside review: "#x /approve"
    # ran a root group's command in the inbox that the operators list refused in the chat).
    if message.is_bot_message or (message.forwarded_from is not None and message.origin == GATEWAY_ORIGIN):
        return route_message(message, ctx, owner, None)
    sticky = parse_sticky(message.content)
    if sticky is not None:
        return apply_sticky(sticky, message, ctx, owner)
    command = parse_command(message.content, ctx)
    if command is not None:
        consumed = run_command(command, message, ctx, owner)
        if consumed.then is None:
            return consumed
        # `/new text`: the text is routed as this message's own, now, in its place in the batch; only the prefix
        # layer reads it (it is not a command or a sticky setting: `/new /new …` resets once)
        message = replace(message, content=consumed.then)
        routed = route_message(message, ctx, owner, split_prefix(message.content, ctx, owner))
        # a built-in answer would take the id of the command's own answer: the command has answered this row
        return consumed if isinstance(routed, Builtin) else routed
    return route_message(message, ctx, owner, split_prefix(message.content, ctx, owner))


def probe_message(
    chat_jid: str,
    content: str = "",
    *,
    sender: str = "",
    verb: str = "message",
    topic: str = "",
    origin: str = "cli",
) -> Message:
    """An unstored inbound message (seq 0) for dry runs such as ``gated route test``, from ``origin``."""
    now = dt.datetime.now(dt.UTC)
    return Message(
        seq=0,
        id="probe",
        chat_jid=chat_jid,
        direction="in",
        sender=sender,
        sender_name="",
        content=content,
        timestamp=now,
        received_at=now,
        verb=verb or "message",
        topic=topic,
        reply_to_id=None,
        reply_to_text=None,
        reply_to_sender=None,
        attachments=None,
        forwarded_from=None,
        is_bot_message=False,
        origin=origin,
        run_id=None,
        output_index=None,
        delivery_status=None,
        delivery_attempts=0,
        deliver_after=None,
        delivery_error=None,
        platform_message_id=None,
        status="new",
    )
