"""Owner resolution (SPEC §5.5): web:/local: chats own their folder; other chats take the first folder route."""

from __future__ import annotations

from kanmon.gateway import Consumed, Ignored, Unowned, process_message, resolve_owner
from tests.unit.gateway.gateway_world import CHAT, World


def test_web_and_local_chats_belong_to_their_folder_directly(world: World) -> None:
    assert resolve_owner(world.ctx(), "web:corp").folder == "corp"
    assert resolve_owner(world.ctx(), "local:corp/eng").folder == "corp/eng"


def test_web_chat_of_an_unregistered_or_malformed_folder_has_no_owner(world: World) -> None:
    assert resolve_owner(world.ctx(), "web:nobody").folder is None
    assert resolve_owner(world.ctx(), "web:../etc").folder is None


def test_other_chats_belong_to_the_first_matching_folder_route(world: World) -> None:
    world.route("chat_jid=telegram:-7", "other", seq=0)
    assert resolve_owner(world.ctx(), "telegram:-7").folder == "other"
    assert resolve_owner(world.ctx(), CHAT).folder == "corp"


def test_builtin_and_daemon_routes_never_own_a_chat(world: World) -> None:
    world.route("chat_jid=discord:1", "builtin:drop", seq=0)
    world.route("chat_jid=discord:1", "daemon:hook", seq=1)
    world.route("chat_jid=discord:1", "other", seq=2)
    assert resolve_owner(world.ctx(), "discord:1").folder == "other"


def test_a_sender_route_never_owns_a_chat_because_the_skeleton_has_no_sender(world: World) -> None:
    world.route("platform=discord", "corp/{sender}", seq=0)
    owner = resolve_owner(world.ctx(), "discord:1")
    assert owner.folder is None


def test_a_route_naming_an_unregistered_folder_owns_nothing(world: World) -> None:
    world.route("platform=discord", "ghost", seq=0)
    owner = resolve_owner(world.ctx(), "discord:1")
    assert owner.folder is None
    assert "ghost" in owner.why


def test_messages_of_an_unowned_chat_are_unowned_and_get_no_reply(world: World) -> None:
    [decision] = world.send("/ping", chat="discord:9")
    assert isinstance(decision, Unowned)
    assert world.replies("discord:9") == []


def test_outbound_rows_are_never_routed_again(world: World) -> None:
    [ping] = world.send("/ping")
    assert isinstance(ping, Consumed)
    [reply] = ping.replies
    stored = world.store.get_message(reply.chat_jid, str(reply.id))
    assert stored is not None and isinstance(process_message(stored, world.ctx()), Ignored)
