"""kanmon.gateway: the message loop's brain: owner resolution, the four layers, the impulse gate (SPEC §5–§7).

The loop reads a batch of messages and calls :func:`process_message` on each, in seq order, with one
:class:`LayerContext` per batch; it acts on the :data:`Decision` that comes back and offers forwarded messages to
the :class:`ImpulseGate`.
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
from kanmon.gateway.gate import HeldChat, ImpulseGate
from kanmon.gateway.owner import Owner, resolve_owner
from kanmon.gateway.pipeline import probe_message, process_batch, process_message

__all__ = [
    "Builtin",
    "CommandError",
    "Consumed",
    "Daemon",
    "Decision",
    "Drop",
    "Forward",
    "GatewayError",
    "HeldChat",
    "IdleQueue",
    "Ignored",
    "ImpulseGate",
    "Layer",
    "LayerContext",
    "Owner",
    "QueueControl",
    "Unowned",
    "explain",
    "probe_message",
    "process_batch",
    "process_message",
    "resolve_owner",
]
