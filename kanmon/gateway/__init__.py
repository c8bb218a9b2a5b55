"""kanmon.gateway: the message loop, the four layers, the impulse gate, runs, sessions and delivery (SPEC §5–§11).

:class:`Gateway` wires it together. Its :class:`MessageLoop` reads a batch of messages and calls
:func:`process_message` on each, in seq order, with one :class:`LayerContext` per batch; it records the
:data:`Decision` that comes back, offers forwarded messages to the :class:`ImpulseGate` and enqueues lanes, which
the :class:`LaneRunner` runs when the queue says so.
"""

from __future__ import annotations

from kanmon.gateway.context import LayerContext
from kanmon.gateway.decisions import (
    Builtin,
    Consumed,
    Daemon,
    Decision,
    Drop,
    Forward,
    IdleQueue,
    Ignored,
    Layer,
    QueueControl,
    Unowned,
)
from kanmon.gateway.errors import CommandError, GatewayError
from kanmon.gateway.explain import explain
from kanmon.gateway.feed import ChatFeed, Subscription
from kanmon.gateway.gate import HeldChat, ImpulseGate
from kanmon.gateway.loop import LoopConfig, MessageLoop
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.owner import Owner, resolve_owner
from kanmon.gateway.pipeline import probe_message, process_batch, process_message
from kanmon.gateway.runner import DEAD_LETTER_TEXT, LaneRunner
from kanmon.gateway.service import Gateway, GatewayConfig
from kanmon.gateway.spec import RunDefaults

__all__ = [
    "DEAD_LETTER_TEXT",
    "Builtin",
    "ChatFeed",
    "CommandError",
    "Consumed",
    "Daemon",
    "Decision",
    "Drop",
    "Forward",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "GatewayMetrics",
    "HeldChat",
    "IdleQueue",
    "Ignored",
    "ImpulseGate",
    "LaneRunner",
    "Layer",
    "LayerContext",
    "LoopConfig",
    "MessageLoop",
    "Owner",
    "QueueControl",
    "RunDefaults",
    "Subscription",
    "Unowned",
    "explain",
    "probe_message",
    "process_batch",
    "process_message",
    "resolve_owner",
]
