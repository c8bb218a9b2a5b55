"""The configured impulse defaults (``impulse.threshold``, ``impulse.max_hold_ms``) reach every forwarded message,
and a route's own ``impulse_config`` is merged over them, not over the built-in numbers."""

from __future__ import annotations

from kanmon.gateway import Forward
from kanmon.router import ImpulseConfig
from tests.unit.gateway.gateway_world import World

CONFIGURED = ImpulseConfig(threshold=300, max_hold_ms=2_000)


def test_a_message_no_route_configures_gets_the_configured_defaults(world: World) -> None:
    [decision] = world.send("hello", ctx=world.ctx(impulse=CONFIGURED))
    assert isinstance(decision, Forward)
    assert (decision.impulse.threshold, decision.impulse.max_hold_ms) == (300, 2_000)


def test_a_route_override_is_merged_over_the_configured_defaults(world: World) -> None:
    world.route("platform=telegram", "corp", seq=1, impulse='{"threshold": 50}')
    [decision] = world.send("hello", ctx=world.ctx(impulse=CONFIGURED))
    assert isinstance(decision, Forward)
    assert (decision.impulse.threshold, decision.impulse.max_hold_ms) == (50, 2_000)


def test_web_chats_get_the_configured_defaults_too(world: World) -> None:
    [decision] = world.send("hello", chat="web:corp", ctx=world.ctx(impulse=CONFIGURED))
    assert isinstance(decision, Forward)
    assert decision.impulse.threshold == 300
