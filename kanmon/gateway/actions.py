"""Agent actions (issue 15): what a run's output blocks ask besides replying, checked and applied exactly once.

For each action of an output (:mod:`kanmon.container.actions`), :class:`AgentActions`:

1. skips it when ``(run_id, output_index, action_index)`` was applied before (a reclaimed run replays its output);
2. decides on a store thread whether the agent may do it, and what it does (:func:`decide`);
3. applies the effect with its ``run_actions`` row in one transaction (:meth:`kanmon.store.Store.apply_action`).

Who may do what (the group family is ``Group.parent``, else the folder's path: ``corp/eng``'s parent is ``corp``):

* ``send``: into a chat its own group owns (:func:`kanmon.gateway.owner.resolve_owner`), one a child group owns, or
  one its parent owns; a root group (no parent) into any chat (one read from the store, ``web:``, only of a group).
  The message is an outbound row with the id ``run-<run>-<output>-a<action>``, so it is stored once in its chat
  (``UNIQUE (chat_jid, id)``).
* ``schedule``, ``cancel_task``, ``list_tasks``: for its own folder; a root group for any. A schedule is checked like
  ``gated task add`` (:func:`kanmon.gateway.tasks.new_task`; without ``tz`` in gated's ``scheduler.timezone``, like
  the command); the task's ``created_by`` is the run. A task created or cancelled wakes the scheduler, so a task due
  soon fires on time rather than at its next look (``scheduler.interval``).

A refused action never ends the run: its reason is one line of the run's problems (the run log) and a system message
for the folder's next prompt. ``list_tasks``, and every schedule and cancel, answer with a system message too: the
output protocol has no way back into a running agent.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kanmon.clock import Clock
from kanmon.container.actions import (
    Action,
    BadAction,
    CancelTaskAction,
    ListTasksAction,
    ScheduleAction,
    SendAction,
)
from kanmon.container.events import Output
from kanmon.errors import InvalidInput, KanmonError
from kanmon.folders import jid_problem, validate_topic
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN, LayerContext
from kanmon.gateway.decisions import IdleQueue
from kanmon.gateway.owner import resolve_owner
from kanmon.gateway.prompt import Batch
from kanmon.gateway.schedule import ScheduleKind
from kanmon.gateway.tasks import new_task, task_line
from kanmon.gateway.watch import Collect
from kanmon.message_ids import derived_id
from kanmon.store import (
    ActionEffect,
    Message,
    NewMessage,
    NewTask,
    Store,
    StoreFenced,
    StoreUnavailable,
    TaskCancel,
    refusal_line,
)
from kanmon.store.aio import AsyncStore

__all__ = ["AgentActions", "action_id", "decide", "send_problem"]

logger = logging.getLogger(__name__)

_KIND = {SendAction: "send", ScheduleAction: "schedule", CancelTaskAction: "cancel_task", ListTasksAction: "list_tasks"}


def action_id(run_id: str, output_index: int, action_index: int) -> str:
    """The message id of a ``send`` action: ``run-<run>-<output>-a<action>``."""
    return derived_id("run-", run_id, output_index, f"a{action_index}")


def send_problem(ctx: LayerContext, folder: str, chat_jid: str) -> str | None:
    """Why group ``folder`` may not send into ``chat_jid`` (None: it may); the module docstring says who may."""
    if ctx.group(folder) is None:
        return f"group {folder} is not registered"
    if (problem := jid_problem(chat_jid)) is not None:
        return problem
    parent = ctx.parent_of(folder)
    if parent is None:  # a root group: any chat, but one read from the store must have a group's page to show it
        if read_from_store(chat_jid) and (unread := resolve_owner(ctx, chat_jid)).folder is None:
            return f"chat {chat_jid} belongs to no group ({unread.why}): no page would ever show the message"
        return None
    owner = resolve_owner(ctx, chat_jid)
    if owner.folder is None:
        return f"chat {chat_jid} belongs to no group ({owner.why})"
    if owner.folder in (folder, parent) or ctx.parent_of(owner.folder) == folder:
        return None
    return f"chat {chat_jid} belongs to {owner.folder}, which is not {folder}, its parent or a child of it"


def decide(
    store: Store,
    batch: Batch,
    run_id: str,
    output_index: int,
    action_index: int,
    action: Action,
    *,
    now: dt.datetime,
    files: Sequence[dict[str, Any]] = (),
    refused_files: Sequence[str] = (),
    zone: str = "UTC",
) -> ActionEffect:
    """What ``action`` of group ``batch.head.folder`` does (blocking: reads groups, routes and tasks), as an effect
    for :meth:`kanmon.store.Store.apply_action`. ``files`` are a send's attachments already in the media store;
    ``zone`` (an IANA name, gated's ``scheduler.timezone``) is a schedule's zone when the action names none."""
    made = _Effects(run_id, output_index, action_index, batch.head.folder, _KIND.get(type(action), "invalid"))
    ctx = LayerContext(store, IdleQueue())
    if isinstance(action, BadAction):
        return made.refused(action.reason)
    if isinstance(action, SendAction):
        return _send(ctx, made, action, now, files, refused_files)
    target = getattr(action, "folder", None) or made.folder
    root = ctx.is_root(made.folder)
    if target != made.folder and not root:
        return made.refused(f"only a root group may act on another group's tasks ({target})")
    if isinstance(action, ScheduleAction):
        return _schedule(store, made, action, target, now, zone)
    if isinstance(action, CancelTaskAction):
        return _cancel(store, made, action, root=root)
    tasks = store.list_tasks(target)
    lines = [task_line(task) for task in tasks] or ["(none)"]
    note = "\n".join([f"Tasks of {target} (id, status, group → chat, schedule, next fire, prompt):", *lines])
    return made.done(f"listed {len(tasks)} tasks of {target}", note=note)


@dataclass(frozen=True, slots=True)
class _Effects:
    """Makes the effects of one action (its key and kind filled in)."""

    run_id: str
    output_index: int
    action_index: int
    folder: str
    kind: str

    def refused(self, reason: str) -> ActionEffect:
        line = refusal_line(self.output_index, self.action_index, self.kind, reason)
        return self.effect("refused", line, note=line)

    def done(
        self,
        detail: str,
        *,
        message: NewMessage | None = None,
        task: NewTask | None = None,
        cancel: TaskCancel | None = None,
        note: str | None = None,
    ) -> ActionEffect:
        return self.effect("done", detail, message=message, task=task, cancel=cancel, note=note)

    def effect(self, outcome: Literal["done", "refused"], detail: str, **changes: Any) -> ActionEffect:
        return ActionEffect(
            run_id=self.run_id, output_index=self.output_index, action_index=self.action_index, folder=self.folder,
            kind=self.kind, outcome=outcome, detail=detail, **changes,
        )  # fmt: skip


def _send(
    ctx: LayerContext,
    made: _Effects,
    action: SendAction,
    now: dt.datetime,
    files: Sequence[dict[str, Any]],
    refused_files: Sequence[str],
) -> ActionEffect:
    problem = send_problem(ctx, made.folder, action.chat)
    if problem is not None:
        return made.refused(problem)
    try:
        validate_topic(action.chat, action.topic)
    except InvalidInput as exc:
        return made.refused(str(exc))
    if not action.text.strip() and not files:
        return made.refused("nothing to send (no text, no file)")
    notes = "\n".join(f"⚠ not sent: {line}" for line in refused_files)
    message = NewMessage(
        chat_jid=action.chat, id=action_id(made.run_id, made.output_index, made.action_index), topic=action.topic,
        content="\n\n".join(part for part in (action.text.strip(), notes) if part), attachments=list(files) or None,
        direction="out", origin=GATEWAY_ORIGIN, delivered=read_from_store(action.chat), timestamp=now,
    )  # fmt: skip
    return made.done(f"sent to {action.chat}", message=message)


def _schedule(
    store: Store, made: _Effects, action: ScheduleAction, target: str, now: dt.datetime, zone: str
) -> ActionEffect:
    kind: ScheduleKind = action.kind
    try:
        task = new_task(
            store, target, kind=kind, text=action.expression, prompt=action.prompt, zone=action.tz or zone,
            now=now, chat_jid=action.chat, topic=action.topic, missed=action.missed, created_by=made.run_id,
        )  # fmt: skip
    except KanmonError as exc:
        return made.refused(str(exc))
    note = f"Task {{task}} scheduled by your run {made.run_id}: {action.kind} {action.expression} → {task.chat_jid}."
    return made.done(f"scheduled a task of {target}", task=task, note=note)


def _cancel(store: Store, made: _Effects, action: CancelTaskAction, *, root: bool) -> ActionEffect:
    found = store.get_task(action.task_id)
    if found is None or (found.group_folder != made.folder and not root):
        return made.refused(f"no task {action.task_id} in {made.folder}")
    if found.status not in ("active", "paused"):
        return made.refused(f"task {action.task_id} is {found.status} already")
    cancel = TaskCancel(found.id, None if root else made.folder, f"cancelled by run {made.run_id}")
    return made.done(f"cancelled task {found.id}", cancel=cancel, note=f"Task {found.id} cancelled.")


class AgentActions:
    """Applies the actions of a run's outputs; see the module docstring. Called with ``(batch, run_id, output)``, it
    returns the lines for the run log (one per refused action), and hands the messages it stored to ``on_stored``.
    ``zone`` is the zone of a schedule that names none (``scheduler.timezone``); ``on_tasks`` is called on the event
    loop when an action created or cancelled a task (gated wakes its scheduler)."""

    def __init__(
        self,
        db: AsyncStore,
        *,
        clock: Clock,
        collect: Collect | None = None,
        on_stored: Callable[[list[Message]], None] = lambda rows: None,
        zone: str = "UTC",
        on_tasks: Callable[[], None] = lambda: None,
    ) -> None:
        self._db, self._clock, self._collect, self._on_stored = db, clock, collect, on_stored
        self._zone, self._on_tasks = zone, on_tasks

    async def __call__(self, batch: Batch, run_id: str, output: Output) -> list[str]:
        """Apply each action of ``output`` not applied before; the refusals, one line each."""
        store, problems = self._db.store, []
        for index, action in enumerate(output.actions):
            if await self._db.retrying(store.action_done, run_id, output.index, index):
                continue
            files: list[dict[str, Any]] = []
            refused: list[str] = []
            if isinstance(action, SendAction) and action.attachments:
                if self._collect is None:
                    refused = [f"attachment {ref.path!r}: this gated keeps no files" for ref in action.attachments]
                else:
                    files, refused = await self._collect(batch.head.folder, action.attachments)
            now = self._clock.now()
            try:
                effect = await self._db.retrying(
                    decide, store, batch, run_id, output.index, index, action, now=now, files=files,
                    refused_files=refused, zone=self._zone,
                )  # fmt: skip
                applied = await self._db.retrying(store.apply_action, effect, now=now)
            except (StoreFenced, StoreUnavailable):
                raise
            except Exception as exc:  # a value nothing could hold, kanmon's own trouble: noted, and the run goes on
                logger.error("action %d.%d could not be applied: %s", output.index, index, exc, exc_info=exc)
                problems.append(f"action {output.index}.{index} could not be applied: {exc}")
                continue
            if applied.messages:
                self._on_stored(applied.messages)
            if applied.applied and applied.outcome == "refused":  # the store's: a task whose group went meanwhile
                logger.warning("%s", applied.detail)
                problems.append(applied.detail)
            elif applied.applied and (applied.task is not None or effect.cancel is not None):
                self._on_tasks()
            problems.extend(refused)
        return problems
