"""kanmon.gateway: the message loop, the four layers, the impulse gate, runs, sessions and delivery (SPEC §5–§11).

:class:`Gateway` wires it together. Its :class:`MessageLoop` reads a batch of messages and calls
:func:`process_message` on each, in seq order, with one :class:`LayerContext` per batch; it records the
:data:`Decision` that comes back, offers forwarded messages to the :class:`ImpulseGate` and enqueues lanes, which
the :class:`LaneRunner` runs when the queue says so.

Every name here is imported on first use (:func:`kanmon.lazy.lazy_exports`): importing one submodule, as the
CLI's store commands do, does not import the whole gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanmon.lazy import lazy_exports

__all__: list[str]  # the names below, set by lazy_exports

if TYPE_CHECKING:
    from kanmon.gateway.context import LayerContext as LayerContext
    from kanmon.gateway.decisions import Builtin as Builtin
    from kanmon.gateway.decisions import Consumed as Consumed
    from kanmon.gateway.decisions import Daemon as Daemon
    from kanmon.gateway.decisions import Decision as Decision
    from kanmon.gateway.decisions import Drop as Drop
    from kanmon.gateway.decisions import Forward as Forward
    from kanmon.gateway.decisions import IdleQueue as IdleQueue
    from kanmon.gateway.decisions import Ignored as Ignored
    from kanmon.gateway.decisions import Layer as Layer
    from kanmon.gateway.decisions import QueueControl as QueueControl
    from kanmon.gateway.decisions import Unowned as Unowned
    from kanmon.gateway.errors import CommandError as CommandError
    from kanmon.gateway.errors import GatewayError as GatewayError
    from kanmon.gateway.explanation import explain as explain
    from kanmon.gateway.feed import ChatFeed as ChatFeed
    from kanmon.gateway.feed import Subscription as Subscription
    from kanmon.gateway.gate import HeldChat as HeldChat
    from kanmon.gateway.gate import ImpulseGate as ImpulseGate
    from kanmon.gateway.loop import LoopConfig as LoopConfig
    from kanmon.gateway.loop import MessageLoop as MessageLoop
    from kanmon.gateway.metrics import GatewayMetrics as GatewayMetrics
    from kanmon.gateway.owner import Owner as Owner
    from kanmon.gateway.owner import resolve_owner as resolve_owner
    from kanmon.gateway.pipeline import probe_message as probe_message
    from kanmon.gateway.pipeline import process_batch as process_batch
    from kanmon.gateway.pipeline import process_message as process_message
    from kanmon.gateway.runner import DEAD_LETTER_TEXT as DEAD_LETTER_TEXT
    from kanmon.gateway.runner import LaneRunner as LaneRunner
    from kanmon.gateway.service import Gateway as Gateway
    from kanmon.gateway.service import GatewayConfig as GatewayConfig
    from kanmon.gateway.spec import RunDefaults as RunDefaults
else:
    __getattr__, __dir__, __all__ = lazy_exports(
        __name__,
        {
            "context": ["LayerContext"],
            "decisions": [
                "Builtin",
                "Consumed",
                "Daemon",
                "Decision",
                "Drop",
                "Forward",
                "IdleQueue",
                "Ignored",
                "Layer",
                "QueueControl",
                "Unowned",
            ],
            "errors": ["CommandError", "GatewayError"],
            "explanation": ["explain"],
            "feed": ["ChatFeed", "Subscription"],
            "gate": ["HeldChat", "ImpulseGate"],
            "loop": ["LoopConfig", "MessageLoop"],
            "metrics": ["GatewayMetrics"],
            "owner": ["Owner", "resolve_owner"],
            "pipeline": ["probe_message", "process_batch", "process_message"],
            "runner": ["DEAD_LETTER_TEXT", "LaneRunner"],
            "service": ["Gateway", "GatewayConfig"],
            "spec": ["RunDefaults"],
        },
    )
