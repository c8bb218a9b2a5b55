"""The prefix layer (SPEC §6.3): only a *leading* @child or #topic counts; everything else is ordinary text."""

from __future__ import annotations

import pytest

from kanmon.gateway import Forward, Layer, LayerContext
from kanmon.gateway.layers.prefix import PrefixSplit, split_prefix
from tests.unit.gateway.gateway_world import World


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("@eng do x", PrefixSplit("corp/eng", None, "do x"), id="child"),
        pytest.param("  @eng   do x", PrefixSplit("corp/eng", None, "do x"), id="leading-space"),
        pytest.param("#t hello", PrefixSplit(None, "#t", "hello"), id="topic"),
        pytest.param("#Release-2 go", PrefixSplit(None, "#Release-2", "go"), id="topic-name-chars"),
        pytest.param("@eng #t do x", PrefixSplit("corp/eng", "#t", "do x"), id="child-then-topic"),
        pytest.param("@eng\nline two", PrefixSplit("corp/eng", None, "line two"), id="newline-separates"),
        pytest.param("@missing hi", None, id="unknown-child-falls-through"),
        pytest.param("@missing #t hi", None, id="unknown-child-leaves-everything-untouched"),
        pytest.param("hello @bob", None, id="mid-sentence-mention"),
        pytest.param("mail me at x@example.com", None, id="email"),
        pytest.param("x@example.com", None, id="email-at-start"),
        pytest.param("see issue #42", None, id="mid-sentence-hash"),
        pytest.param("@Eng hi", None, id="uppercase-is-not-a-folder"),
        pytest.param("@eng", None, id="nothing-after-the-prefix"),
        pytest.param("#t ", None, id="nothing-after-the-topic"),
        pytest.param("# heading", None, id="hash-without-name"),
    ],
)
def test_split_prefix_only_takes_a_leading_known_child_or_topic(
    world: World, content: str, expected: PrefixSplit | None
) -> None:
    ctx: LayerContext = world.ctx()
    assert split_prefix(content, ctx, "corp") == expected


@pytest.mark.parametrize("content", ["hello @bob", "mail me at x@example.com", "see issue #42", "@missing hi"])
def test_messages_with_a_mention_address_or_hash_inside_reach_the_owner_unchanged(world: World, content: str) -> None:
    [decision] = world.send(content)
    assert isinstance(decision, Forward)
    assert (decision.folder, decision.topic, decision.content) == ("corp", "", content)


def test_at_child_routes_to_the_owners_child_with_the_prefix_stripped(world: World) -> None:
    [decision] = world.send("@eng do x")
    assert isinstance(decision, Forward) and decision.layer is Layer.PREFIX
    assert (decision.folder, decision.content) == ("corp/eng", "do x")


def test_at_child_needs_a_child_of_this_owner_not_any_group(world: World) -> None:
    # `other` is registered, but it is not corp/other
    [decision] = world.send("@other hi")
    assert isinstance(decision, Forward) and decision.folder == "corp"
    assert decision.content == "@other hi"


def test_hash_topic_puts_the_message_in_that_topic_of_the_routed_folder(world: World) -> None:
    [decision] = world.send("#t hello")
    assert isinstance(decision, Forward)
    assert (decision.folder, decision.topic, decision.content) == ("corp", "#t", "hello")


def test_a_prefix_topic_beats_the_sticky_topic(world: World) -> None:
    _, decision = world.send("#sticky", "#t hello")
    assert isinstance(decision, Forward) and decision.topic == "#t"


def test_at_child_beats_the_sticky_group(world: World) -> None:
    _, decision = world.send("@corp/ops", "@eng hi")
    assert isinstance(decision, Forward) and decision.folder == "corp/eng"
