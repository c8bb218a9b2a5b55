"""The lifecycle events trusted local plugins may observe or extend (issue 16 item 6), as pluggy hook specs.

A plugin is a module or object with functions named like the specs below, marked with :data:`hookimpl`; each takes
the arguments it names, in any order, and may leave any out (pluggy's rules). It runs on a thread of its own, never
on gated's event loop, bounded by ``hooks.timeout`` (:mod:`kanmon.gateway.hooks.calls`)::

    from kanmon.gateway.hooks import Drop, hookimpl

    @hookimpl
    def message_routed(message, folder):
        return Drop() if "unsubscribe" in message.content else None

Observers (``message_stored``, ``run_finished``, ``session_reset``, ``delivery_failed``, ``dead_letter``,
``task_fired``) are told after the fact, in the background, at least once (a crash before the loop records its
tick tells ``message_stored`` again); what they return is ignored. Deciders (``message_routed``, ``run_starting``) are
waited for, at most ``hooks.timeout`` each; one that times out or raises is skipped and the event goes on as if it
had answered None. Records (:class:`~kanmon.store.Message`, :class:`~kanmon.store.Run`, …) are frozen: the real ids,
never the pseudonyms of :mod:`kanmon.gateway.privacy` (plugins are trusted code of the operator's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pluggy

from kanmon.store import Group, Message, Run, Task

__all__ = ["PROJECT", "Drop", "HookSpecs", "Retarget", "RunExtras", "hookimpl", "hookspec"]

PROJECT = "kanmon"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's function as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class Drop:
    """``message_routed``'s answer: the message is not run (marked done, never answered)."""


@dataclass(frozen=True, slots=True)
class Retarget:
    """``message_routed``'s answer: run the message in the registered group ``folder`` instead (a group other than
    the chat's owner receives it as a delegation, and answers the chat, as a route to it would); ``topic`` None keeps
    the topic. A folder that is not registered is logged and the message keeps its target."""

    folder: str
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class RunExtras:
    """``run_starting``'s answer: ``env`` added to the agent's environment (a name the group sets keeps the group's
    value), ``notes`` added to the prompt as system messages (origin ``hook``)."""

    env: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()


class HookSpecs:
    """The hooks kanmon calls; see the module docstring for how."""

    @hookspec
    def message_stored(self, message: Message) -> None:
        """A row was stored, inbound or outbound (told as the loop reads it, in seq order)."""

    @hookspec
    def message_routed(self, message: Message, folder: str, topic: str) -> Drop | Retarget | None:
        """An inbound message is about to be run by ``folder``'s agent in ``topic``; answer :class:`Drop`,
        :class:`Retarget` or None (go on). Called on the loop's store thread, before the decision is recorded; each
        plugin sees the target as the plugins before it left it."""

    @hookspec
    def run_starting(self, run_id: str, group: Group, runtime: str) -> RunExtras | None:
        """A run of ``group``'s agent is about to start (before its container or process exists); answer
        :class:`RunExtras` to add environment variables or system messages. The agent is started before its batch
        is taken (so it boots while the batch is read): a start that then finds nothing left to run (the lane's
        messages were taken or settled meanwhile) is released at once, and no ``run_finished`` follows it."""

    @hookspec
    def run_finished(self, run: Run, status: str, error: str | None, outputs: int) -> None:
        """A run ended and its outcome is recorded: ``status`` ``ok``, ``error``, ``timeout``, ``stopped`` …"""

    @hookspec
    def session_reset(self, folder: str, topic: str, chat_jid: str, reason: str) -> None:
        """A session of ``folder`` in ``topic`` was discarded: ``reason`` ``new`` (the ``/new`` command), or the
        session reset policy's ``idle`` or ``daily`` (see README "Sessions: resets and the memory flush")."""

    @hookspec
    def delivery_failed(self, message: Message, error: str, final: bool) -> None:
        """An attempt to deliver an outbound row failed; ``final`` when it will not be tried again."""

    @hookspec
    def dead_letter(self, folder: str, chat_jid: str, topic: str, messages: Sequence[Message]) -> None:
        """A batch was given up on after its last attempt: its rows are dead."""

    @hookspec
    def task_fired(self, task: Task, stored: int) -> None:
        """A scheduled task fired: ``stored`` occurrence messages went into its chat."""
