"""Owner resolution (SPEC §5.5): which registered group a chat belongs to.

- ``web:<f>`` and ``local:<f>`` belong to folder ``f`` directly, when ``f`` is registered.
- Any other JID: the first route, in ``(seq, id)`` order, whose target is a folder and which matches the skeleton
  message ``{chat_jid, verb: message}`` (empty sender, so ``{sender}`` routes never own a chat). Builtin and daemon
  routes are passed over: a chat whose typing events go to ``builtin:drop`` still has an owner for its messages.
- A folder the route names but nobody registered owns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from kanmon.folders import is_valid_folder, split_jid
from kanmon.gateway.context import LayerContext
from kanmon.router import MessageFields, Route, RouteError, TargetKind, parse_target, resolve

__all__ = ["DIRECT_PLATFORMS", "Owner", "resolve_owner"]

DIRECT_PLATFORMS = ("web", "local")


@dataclass(frozen=True, slots=True)
class Owner:
    """The group that owns a chat (``folder``), or None with the reason in ``why``."""

    folder: str | None
    why: str


def resolve_owner(ctx: LayerContext, chat_jid: str) -> Owner:
    """The owner of ``chat_jid``; ``Owner(None, why)`` when no registered group takes it."""
    platform, room = split_jid(chat_jid)
    if platform in DIRECT_PLATFORMS:
        if is_valid_folder(room) and ctx.group(room) is not None:
            return Owner(room, f"{platform}: chats belong to folder {room}")
        return Owner(None, f"{platform}: chat names folder {room!r}, which is not registered")
    routes = [route for route in ctx.routes() if _targets_folder(route)]
    decision = resolve(routes, MessageFields(chat_jid=chat_jid))
    if decision is None:
        return Owner(None, f"no folder route matches {{chat_jid={chat_jid}, verb=message}}")
    folder = decision.target.name
    if ctx.group(folder) is None:
        return Owner(None, f"{decision.route.describe()} names folder {folder}, which is not registered")
    return Owner(folder, f"owned by {folder} via {decision.route.describe()}")


def _targets_folder(route: Route) -> bool:
    # A {sender} template cannot parse without a sender, and the skeleton has none: it never owns a chat.
    try:
        return parse_target(route.target).kind is TargetKind.FOLDER
    except RouteError:
        return False
