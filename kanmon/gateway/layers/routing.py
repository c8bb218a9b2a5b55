"""The routing layer (SPEC §6.4): where a message that no earlier layer consumed goes.

In order:

1. a child folder named by a leading ``@name`` (prefix layer);
2. the chat's sticky group, if it is still registered;
3. for ``web:<f>`` and ``local:<f>`` chats, their own folder: they name it, and a catch-all route must not carry a
   group's web chat off to another group;
4. the routes table: the first match in ``(seq, id)`` order, via :func:`kanmon.router.trace`; a ``{sender}`` route
   whose folder is not registered falls through to the next route (logged);
5. the chat's owner.

The topic is the prefix's ``#name``, else the chat's sticky topic, else the message's own topic. Whatever steers the
message, the impulse settings come from the route that matches it (defaults when none does): the gate batches per
chat, and one chat should not change weights with each sticky or prefix.
"""

from __future__ import annotations

import logging

from kanmon.folders import split_jid
from kanmon.gateway.context import LayerContext, may_route
from kanmon.gateway.decisions import Builtin, Daemon, Decision, Drop, Forward, Layer, Unowned
from kanmon.gateway.layers.prefix import PrefixSplit
from kanmon.gateway.owner import DIRECT_PLATFORMS
from kanmon.router import MessageFields, RouteDecision, RouteTrace, TargetKind, Verdict, trace
from kanmon.store import Chat, Message

__all__ = ["route_message"]

logger = logging.getLogger(__name__)


def route_message(message: Message, ctx: LayerContext, owner: str, prefix: PrefixSplit | None) -> Decision:
    """Decide where ``message`` goes, given its owner and what the prefix layer made of it."""
    chat = ctx.chat(message.chat_jid)
    fields = MessageFields(chat_jid=message.chat_jid, sender=message.sender, verb=message.verb)
    routed = trace(ctx.routes(), fields, impulse=ctx.impulse, folders=ctx.groups().keys())
    decision = routed.decision
    impulse = decision.impulse if decision is not None else ctx.impulse
    topic = _topic(message, chat, prefix)
    content = prefix.content if prefix is not None else message.content
    if prefix is not None and prefix.folder is not None:
        why = f"prefix {prefix.describe()}"
        return Forward(message, Layer.PREFIX, why, prefix.folder, topic, content, impulse)
    tagged = f" (prefix {prefix.describe()})" if prefix is not None else ""
    sticky = chat.sticky_group if chat is not None else None
    if sticky and not may_route(owner, sticky):  # set under another owner, before the routes moved the chat
        logger.warning("sticky group %s is not in the tree of the chat's owner %s; routing as usual", sticky, owner)
    elif sticky:
        if ctx.group(sticky) is not None:
            return Forward(message, Layer.ROUTING, f"sticky group {sticky}{tagged}", sticky, topic, content, impulse)
        logger.warning("sticky group %s gone; routing as usual", sticky)
    platform = split_jid(message.chat_jid)[0]
    if platform in DIRECT_PLATFORMS:
        why = f"{platform}: chats go to their own folder {owner}{tagged}"
        return Forward(message, Layer.ROUTING, why, owner, topic, content, impulse)
    if not ctx.dry_run:
        _log_fall_through(message, routed)
    if decision is None:
        return Forward(
            message, Layer.ROUTING, f"no route matches; owner {owner} takes it{tagged}", owner, topic, content, impulse
        )
    return _target(message, ctx, decision, topic, content, tagged)


def _target(
    message: Message, ctx: LayerContext, decision: RouteDecision, topic: str, content: str, tagged: str
) -> Decision:
    target, route_id = decision.target, decision.route.id
    why = f"{decision.route.describe()}{tagged}"
    if target.kind is TargetKind.FOLDER:
        if ctx.group(target.name) is None:
            return Unowned(message, Layer.ROUTING, f"{why}: folder {target.name} is not registered")
        return Forward(message, Layer.ROUTING, why, target.name, topic, content, decision.impulse, route_id)
    if target.kind is TargetKind.DAEMON:
        return Daemon(message, Layer.ROUTING, why, target.name, decision.impulse, route_id)
    if target.name == "drop":
        return Drop(message, Layer.ROUTING, why, route_id)
    return Builtin(message, Layer.ROUTING, why, target.name, route_id)


def _log_fall_through(message: Message, routed: RouteTrace) -> None:
    for check in routed.checks:
        if check.verdict is Verdict.NO_FOLDER:
            logger.info("%s: %s; seq=%d tries the next route", check.route.describe(), check.detail, message.seq)


def _topic(message: Message, chat: Chat | None, prefix: PrefixSplit | None) -> str:
    if prefix is not None and prefix.topic is not None:
        return prefix.topic
    if chat is not None and chat.sticky_topic:
        return chat.sticky_topic
    return message.topic
