"""What the four layers decide for one inbound message: a closed set of plain values the message loop acts on.

Every decision names the layer that took the message and says why in one phrase (``gated route test`` prints it).

- :class:`Consumed`: a sticky or command message; its replies are already written as outbound rows; nothing goes to
  an agent.
- :class:`Forward`: deliver to the agent of ``folder`` in session ``topic``, with ``content`` (a prefix stripped).
- :class:`Builtin`: an in-gateway handler (``builtin:ping``).
- :class:`Daemon`: HTTP POST of the message to the daemon ``name``.
- :class:`Drop`: a route said ``builtin:drop``; the row is kept, nothing runs.
- :class:`Unowned`: no group owns the chat (or a route names an unregistered folder); the loop marks the row skipped.
- :class:`Refused`: the sender is not allowed to talk to the chat's agents (issue 16, :mod:`kanmon.gateway.auth`);
  the loop marks the row skipped, counts the sender, and in a direct chat may offer a pairing code.
- :class:`Ignored`: not an inbound row (replies the gateway wrote are never routed again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from kanmon.queue import Lane
from kanmon.router import ImpulseConfig
from kanmon.store import Message, NewMessage

__all__ = [
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
    "Refused",
    "Unowned",
]


class Layer(StrEnum):
    """The step of the pipeline that decided."""

    INPUT = "input"
    OWNER = "owner"
    AUTH = "auth"
    STICKY = "sticky"
    COMMAND = "command"
    PREFIX = "prefix"
    ROUTING = "routing"


@dataclass(frozen=True, slots=True)
class Consumed:
    """The message was a sticky or command message: handled in the gateway, answered, never forwarded."""

    message: Message
    layer: Layer
    why: str
    replies: tuple[NewMessage | Message, ...] = ()
    # True when an earlier pass already handled this message (a re-read batch): nothing was done again.
    repeated: bool = False
    # The text the message then carries on to the agent as its own (``/new text``): the pipeline routes it.
    then: str | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Deliver the message to the agent of ``folder`` in session ``topic``, as ``content``."""

    message: Message
    layer: Layer
    why: str
    folder: str
    topic: str
    content: str
    impulse: ImpulseConfig = field(default_factory=ImpulseConfig)
    route_id: int | None = None


@dataclass(frozen=True, slots=True)
class Builtin:
    """Hand the message to the in-gateway handler ``name``."""

    message: Message
    layer: Layer
    why: str
    name: str
    route_id: int | None = None


@dataclass(frozen=True, slots=True)
class Daemon:
    """POST the message to the configured daemon ``name``."""

    message: Message
    layer: Layer
    why: str
    name: str
    impulse: ImpulseConfig = field(default_factory=ImpulseConfig)
    route_id: int | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """A route drops the message: it stays in the log and nothing runs."""

    message: Message
    layer: Layer
    why: str
    route_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unowned:
    """No registered group takes the message; the loop marks it skipped."""

    message: Message
    layer: Layer
    why: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The sender may not talk to this chat's agents; ``direct`` when the adapter said the chat is not a group."""

    message: Message
    layer: Layer
    why: str
    direct: bool = False


@dataclass(frozen=True, slots=True)
class Ignored:
    """Not a row to route: an outbound reply or status line written by kanmon itself."""

    message: Message
    layer: Layer
    why: str


Decision = Consumed | Forward | Builtin | Daemon | Drop | Unowned | Refused | Ignored


class QueueControl(Protocol):
    """What the command layer needs from the queue (``/stop``, ``/ping``, ``/status``); the daemon wires it."""

    def stop(self, lane: Lane) -> bool:
        """Stop the running container of ``lane``; True when one was running."""
        ...

    def running_count(self) -> int:
        """How many runs are in flight."""
        ...

    def waiting_count(self) -> int:
        """How many lanes wait for a slot."""
        ...

    def offer(self, lane: Lane) -> None:
        """Run ``lane`` soon, after its current run if it has one (``/new`` left a memory flush turn to run)."""
        ...


class IdleQueue:
    """A queue with nothing running: for dry runs (``gated route test``) and tools without a daemon."""

    def stop(self, lane: Lane) -> bool:
        """Nothing runs, so nothing stops."""
        return False

    def running_count(self) -> int:
        """Always 0."""
        return 0

    def waiting_count(self) -> int:
        """Always 0."""
        return 0

    def offer(self, lane: Lane) -> None:
        """Nothing runs here: the gated serving the store runs it on its own."""
