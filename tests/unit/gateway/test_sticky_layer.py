"""The sticky layer (SPEC §6.1): whole-message @, @folder, #, #topic set or clear the chat's steering."""

from __future__ import annotations

import pytest

from kanmon.gateway import Consumed, Forward, Layer, process_message
from kanmon.gateway.layers.sticky import StickyRequest, parse_sticky
from tests.unit.gateway.gateway_world import CHAT, World


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("@", StickyRequest("group", ""), id="clear-group"),
        pytest.param("@corp/eng", StickyRequest("group", "corp/eng"), id="full-folder"),
        pytest.param("  @eng \n", StickyRequest("group", "eng"), id="surrounding-space-ignored"),
        pytest.param("#", StickyRequest("topic", ""), id="clear-topic"),
        pytest.param("#release", StickyRequest("topic", "#release"), id="topic"),
        pytest.param("@eng do x", None, id="inner-space-is-a-prefix-message"),
        pytest.param("@eng\tx", None, id="inner-tab"),
        pytest.param("hello", None, id="plain-text"),
        pytest.param("x@example.com", None, id="email"),
        pytest.param("#!!", None, id="hash-with-no-topic-name"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_sticky_recognises_only_whole_message_forms(content: str, expected: StickyRequest | None) -> None:
    assert parse_sticky(content) == expected


def test_sticky_group_to_a_descendant_is_stored_confirmed_and_consumed(world: World) -> None:
    [decision] = world.send("@corp/eng")
    assert isinstance(decision, Consumed)
    assert decision.layer is Layer.STICKY
    chat = world.store.get_chat(CHAT)
    assert chat is not None and chat.sticky_group == "corp/eng"
    assert world.replies() == ["routing → corp/eng"]


def test_sticky_group_may_name_a_child_relative_to_the_owner(world: World) -> None:
    world.send("@ops")
    chat = world.store.get_chat(CHAT)
    assert chat is not None and chat.sticky_group == "corp/ops"


def test_sticky_group_may_name_the_owner_itself(world: World) -> None:
    world.send("@corp")
    chat = world.store.get_chat(CHAT)
    assert chat is not None and chat.sticky_group == "corp"


@pytest.mark.parametrize("target", ["@other", "@missing", "@corp/nope", "@../etc"])
def test_sticky_group_outside_the_owners_tree_is_refused_and_changes_nothing(world: World, target: str) -> None:
    world.send("@corp/eng")
    [decision] = world.send(target)
    assert isinstance(decision, Consumed)
    chat = world.store.get_chat(CHAT)
    assert chat is not None and chat.sticky_group == "corp/eng"
    assert world.replies()[-1].startswith("Failed: group")


def test_sticky_to_a_non_descendant_is_refused_even_when_the_group_exists(world: World) -> None:
    # Given a chat owned by corp/eng
    world.route("chat_jid=telegram:-5", "corp/eng", seq=0)
    # When it asks to stick to its parent
    world.send("@corp", chat="telegram:-5")
    # Then nothing is stored and it is told why
    chat = world.store.get_chat("telegram:-5")
    assert chat is None or chat.sticky_group is None
    assert world.replies("telegram:-5")[0].startswith("Failed")


def test_a_lone_at_clears_the_sticky_group(world: World) -> None:
    world.send("@corp/eng", "@")
    chat = world.store.get_chat(CHAT)
    assert chat is not None and chat.sticky_group is None
    assert world.replies()[-1] == "routing reset to default"


def test_sticky_group_steers_later_messages_of_the_chat(world: World) -> None:
    _, hello = world.send("@corp/eng", "hello")
    assert isinstance(hello, Forward)
    assert (hello.folder, hello.content) == ("corp/eng", "hello")


def test_sticky_topic_becomes_the_topic_of_later_messages_until_cleared(world: World) -> None:
    # Given a chat that sets a sticky topic
    _, inside, _, after = world.send("#release", "ship it", "#", "thanks")
    # Then the message in between goes to that topic, and after the clear the default topic is back
    assert isinstance(inside, Forward) and inside.topic == "#release"
    assert isinstance(after, Forward) and after.topic == ""
    assert world.replies() == ["topic → #release", "topic reset to default"]


def test_a_sticky_group_that_was_unregistered_falls_back_to_normal_routing(world: World) -> None:
    world.send("@corp/ops")
    world.store.remove_group("corp/ops")
    [decision] = world.send("hello")
    assert isinstance(decision, Forward) and decision.folder == "corp"


def test_bot_messages_are_never_sticky_commands(world: World) -> None:
    message = world.inbound("@corp/eng", is_bot_message=True)
    decision = process_message(message, world.ctx())
    assert isinstance(decision, Forward) and decision.content == "@corp/eng"
    assert world.replies() == []


def test_a_sticky_group_outside_the_chats_new_owners_tree_is_not_followed(world: World) -> None:
    """A chat moved to another group by its routes keeps its sticky group in the store: before, its messages still
    went to a group the new owner may not send it to (an outside review)."""
    world.send("@eng")  # telegram chats belong to corp: corp/eng is allowed
    for route in world.store.list_routes():
        world.store.remove_route(route.id)
    world.route("platform=telegram", "other", seq=10)  # the operator moves the chat
    [decision] = world.send("hello")
    assert isinstance(decision, Forward) and decision.folder == "other"
