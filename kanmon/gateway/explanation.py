"""``gated route test``: which layer and which route would take a message, and why, without changing anything.

The message goes through the real pipeline with a dry-run context (the sticky and command layers describe what they
would do instead of doing it), so the explanation cannot drift from what the loop does.
"""

from __future__ import annotations

from typing import Any

from kanmon.folders import split_jid
from kanmon.gateway.context import LayerContext
from kanmon.gateway.decisions import (
    Builtin,
    Consumed,
    Daemon,
    Decision,
    Drop,
    Forward,
    Ignored,
    Layer,
    Refused,
    Unowned,
)
from kanmon.gateway.errors import GatewayError
from kanmon.gateway.layers.commands import parse_command
from kanmon.gateway.layers.prefix import split_prefix
from kanmon.gateway.owner import DIRECT_PLATFORMS, resolve_owner
from kanmon.gateway.pipeline import process_message
from kanmon.router import MessageFields, trace
from kanmon.store import Message

__all__ = ["explain", "explain_document"]

_PASSES = {
    Layer.STICKY: "passes (not exactly @, @<folder>, # or #<topic>)",
    Layer.COMMAND: "passes (no known /command)",
    Layer.PREFIX: "passes (no leading @<child> or #<topic>)",
}
_ORDER = (Layer.STICKY, Layer.COMMAND, Layer.PREFIX, Layer.ROUTING)


def explain(message: Message, ctx: LayerContext) -> list[str]:
    """Lines saying what each layer makes of ``message`` and where it would go; ``ctx`` must be a dry run."""
    return list(explain_document(message, ctx)["lines"])


def explain_document(message: Message, ctx: LayerContext) -> dict[str, Any]:
    """``gated route test --json``: ``owner`` (``folder`` or null, ``why``), ``lines`` (as :func:`explain` says them)
    and ``decision``: ``kind`` (forward, consumed, builtin, daemon, drop, unowned, refused, ignored), ``layer``,
    ``why``, and for a forward its ``folder``, ``topic`` and ``content``, for a builtin or daemon its ``name``,
    else null. Raises :class:`GatewayError` unless ``ctx`` is a dry run."""
    if not ctx.dry_run:
        raise GatewayError("explain needs a dry-run context: it must not change anything")
    owner = resolve_owner(ctx, message.chat_jid)
    lines = [f"owner: {owner.folder or 'none'} ({owner.why})"]
    decision = process_message(message, ctx)
    if owner.folder is not None:
        lines += _layer_lines(message, ctx, owner.folder, decision)
    lines.append(f"=> {_outcome(decision)}")
    forward = decision if isinstance(decision, Forward) else None
    return {
        "owner": {"folder": owner.folder, "why": owner.why},
        "lines": lines,
        "decision": {
            "kind": type(decision).__name__.lower(),
            "layer": decision.layer.value,
            "why": decision.why,
            "folder": forward.folder if forward else None,
            "topic": forward.topic if forward else None,
            "content": forward.content if forward else None,
            "name": decision.name if isinstance(decision, Builtin | Daemon) else None,
        },
    }


def _layer_lines(message: Message, ctx: LayerContext, owner: str, decision: Decision) -> list[str]:
    lines: list[str] = []
    if decision.layer is Layer.AUTH:  # refused before the layers
        return lines
    for layer in _ORDER:
        if layer is decision.layer:
            break
        lines.append(f"{layer.value}: {_PASSES[layer]}")
    if decision.message.content != message.content and decision.layer in (Layer.PREFIX, Layer.ROUTING):
        # `/new text`: the command runs, then its text goes through the prefix and routing layers as the message's own
        call = parse_command(message.content, ctx)
        assert call is not None
        goes_on = f"then the message goes on as {decision.message.content!r}"
        lines[_ORDER.index(Layer.COMMAND)] = f"command: would run /{call.name} for {owner}; {goes_on}"
        message = decision.message
    if decision.layer is Layer.ROUTING:
        prefix = split_prefix(message.content, ctx, owner)
        if prefix is not None:
            lines[-1] = f"prefix: {prefix.describe()}, then routing decides the folder"
        platform = split_jid(message.chat_jid)[0]
        if platform in DIRECT_PLATFORMS:
            return [*lines, f"routing: {platform}: chats go to their own folder; routes are not consulted"]
        fields = MessageFields(chat_jid=message.chat_jid, sender=message.sender, verb=message.verb)
        lines.append("routing:")
        routed = trace(ctx.routes(), fields, folders=ctx.groups().keys())
        lines += [f"  {line}" for line in routed.lines()]
    return lines


def _outcome(decision: Decision) -> str:
    layer = decision.layer.value
    match decision:
        case Consumed():
            return f"consumed by the {layer} layer: {decision.why}"
        case Forward():
            where = f"folder {decision.folder}, topic {decision.topic!r}"
            return f"forward to {where} by the {layer} layer ({decision.why}); content {decision.content!r}"
        case Builtin():
            return f"builtin:{decision.name} by the {layer} layer ({decision.why})"
        case Daemon():
            return f"daemon:{decision.name} by the {layer} layer ({decision.why})"
        case Drop():
            return f"dropped by the {layer} layer ({decision.why})"
        case Unowned():
            return f"unowned, the row would be skipped ({decision.why})"
        case Refused():
            return f"refused by the {layer} layer, the row would be skipped ({decision.why})"
        case Ignored():
            return f"ignored ({decision.why})"
