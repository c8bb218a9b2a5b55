"""The routing layer (SPEC §6.4): sticky group, then the routes table (first match), then the owner."""

from __future__ import annotations

import logging

import pytest

from kanmon.gateway import Builtin, Daemon, Drop, Forward, Layer, Unowned, process_message
from kanmon.router import ImpulseConfig
from tests.unit.gateway.gateway_world import World


def test_a_lower_seq_route_is_tried_first(world: World) -> None:
    world.route("sender=telegram:42", "corp/ops", seq=5)
    first = world.route("sender=telegram:42", "corp/eng", seq=3)
    [decision] = world.send("hi")
    assert isinstance(decision, Forward) and decision.folder == "corp/eng"
    assert decision.route_id == first


def test_equal_seq_routes_are_tried_by_id(world: World) -> None:
    first = world.route("sender=telegram:*", "corp/ops", seq=5)
    world.route("sender=telegram:*", "corp/eng", seq=5)
    [decision] = world.send("hi")
    assert isinstance(decision, Forward) and decision.route_id == first


def test_a_sender_route_expands_to_a_file_safe_folder(world: World) -> None:
    world.group("corp/telegram-42")
    world.route("platform=telegram sender=telegram:*", "corp/{sender}", seq=0)
    [decision] = world.send("hi")
    assert isinstance(decision, Forward) and decision.folder == "corp/telegram-42"


def test_builtin_drop_keeps_the_row_and_runs_nothing(world: World) -> None:
    world.route("verb=typing", "builtin:drop", seq=0)
    decision = process_message(world.inbound("", verb="typing"), world.ctx())
    assert isinstance(decision, Drop)


def test_builtin_ping_and_daemon_targets_are_handed_back_to_the_loop(world: World) -> None:
    world.route("verb=react", "builtin:ping", seq=0)
    world.route("verb=join", "daemon:welcome", seq=0)
    react = process_message(world.inbound("👍", verb="react"), world.ctx())
    join = process_message(world.inbound("", verb="join"), world.ctx())
    assert isinstance(react, Builtin) and react.name == "ping"
    assert isinstance(join, Daemon) and join.name == "welcome"


def test_a_route_to_an_unregistered_folder_leaves_the_message_unowned(world: World) -> None:
    world.route("sender=telegram:42", "ghost", seq=0)
    [decision] = world.send("hi")
    assert isinstance(decision, Unowned) and "ghost" in decision.why


def test_the_owner_takes_a_message_no_route_matches(world: World) -> None:
    # The owner comes from the skeleton {verb: message}; a reaction matches no route but still has an owner.
    world.store.remove_route(world.store.list_routes()[0].id)
    world.route("platform=telegram verb=message", "corp", seq=0)
    decision = process_message(world.inbound("👍", verb="react"), world.ctx())
    assert isinstance(decision, Forward) and decision.folder == "corp" and decision.route_id is None


def test_the_impulse_settings_come_from_the_matching_route(world: World) -> None:
    world.route("sender=telegram:42", "corp", seq=0, impulse='{"threshold": 0}')
    [decision] = world.send("hi")
    assert isinstance(decision, Forward) and decision.impulse.threshold == 0
    _, sticky = world.send("@corp/eng", "hi")
    assert isinstance(sticky, Forward) and sticky.impulse.threshold == 0
    assert ImpulseConfig().threshold == 100


def test_a_catch_all_route_does_not_carry_a_web_chat_off_to_another_group(world: World) -> None:
    world.route("", "other", seq=0)
    decision = process_message(world.inbound("hi", chat="web:corp", topic="conv1"), world.ctx())
    assert isinstance(decision, Forward) and decision.layer is Layer.ROUTING
    assert (decision.folder, decision.topic) == ("corp", "conv1")


def test_a_sender_route_whose_folder_is_not_registered_falls_through_to_the_next_route_and_says_so(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # telegram:42 has a folder of its own, telegram:7 has none: its message goes on to the next route (corp)
    world.group("corp/telegram-42")
    world.route("platform=telegram", "corp/{sender}", seq=0)
    caplog.set_level(logging.INFO, logger="kanmon.gateway.layers.routing")

    own = process_message(world.inbound("hi"), world.ctx())
    other = process_message(world.inbound("hi", sender="telegram:7"), world.ctx())

    assert isinstance(own, Forward) and own.folder == "corp/telegram-42"
    assert isinstance(other, Forward) and other.folder == "corp"
    [logged] = [r.getMessage() for r in caplog.records if "corp/telegram-7" in r.getMessage()]
    assert "not registered" in logged and "next route" in logged
