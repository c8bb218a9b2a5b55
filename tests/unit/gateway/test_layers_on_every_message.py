"""The layers run on every message of a batch, in seq order (arizuko ran them on the last message only, §4.7)."""

from __future__ import annotations

from kanmon.gateway import Consumed, Forward, process_batch
from tests.unit.gateway.gateway_world import CHAT, World


def test_a_ping_in_the_middle_of_five_messages_is_answered_and_the_other_four_are_forwarded(world: World) -> None:
    # Given a batch of five messages with /ping in the middle
    decisions = world.send("one", "two", "/ping", "four", "five")
    # Then /ping is answered and consumed, and every other message is forwarded in order
    assert [type(d).__name__ for d in decisions] == ["Forward", "Forward", "Consumed", "Forward", "Forward"]
    forwarded = [d.content for d in decisions if isinstance(d, Forward)]
    assert forwarded == ["one", "two", "four", "five"]
    assert len(world.replies()) == 1 and world.replies()[0].startswith("pong")


def test_a_message_before_a_command_is_not_left_behind(world: World) -> None:
    first, ping = world.send("A", "/ping")
    assert isinstance(first, Forward) and first.content == "A"
    assert isinstance(ping, Consumed)


def test_new_then_hello_in_one_batch_resets_the_session_before_hello_is_routed(world: World) -> None:
    # Given an old session
    world.store.set_session("corp", "", "old-session")
    # When /new and hello arrive in the same batch
    reset, hello = world.send("/new", "hello")
    # Then the reset happened (hello will start a new session) and hello goes to the owner
    assert isinstance(reset, Consumed)
    assert world.store.get_session("corp", "") is None
    assert isinstance(hello, Forward) and (hello.folder, hello.content) == ("corp", "hello")


def test_a_sticky_message_steers_the_next_message_of_the_same_batch(world: World) -> None:
    sticky, hello = world.send("@eng", "hello")
    assert isinstance(sticky, Consumed)
    assert isinstance(hello, Forward) and hello.folder == "corp/eng"


def test_a_delegation_does_not_swallow_the_message_before_it(world: World) -> None:
    hello, delegated = world.send("hello", "@eng do x")
    assert isinstance(hello, Forward) and (hello.folder, hello.content) == ("corp", "hello")
    assert isinstance(delegated, Forward) and (delegated.folder, delegated.content) == ("corp/eng", "do x")


def test_process_batch_takes_messages_in_seq_order_whatever_order_they_are_given_in(world: World) -> None:
    rows = [world.inbound(text) for text in ("@corp/ops", "hello")]
    decisions = process_batch(list(reversed(rows)), world.ctx())
    assert [d.message.seq for d in decisions] == [rows[0].seq, rows[1].seq]
    assert isinstance(decisions[1], Forward) and decisions[1].folder == "corp/ops"


def test_chats_in_one_batch_do_not_share_sticky_state(world: World) -> None:
    world.send("@corp/eng")
    [other_chat] = world.send("hello", chat="telegram:-200")
    [same_chat] = world.send("hello", chat=CHAT)
    assert isinstance(other_chat, Forward) and other_chat.folder == "corp"
    assert isinstance(same_chat, Forward) and same_chat.folder == "corp/eng"
