"""The scheduler inside ``gated run`` (issue 15): each due task occurrence becomes one inbound message.

Every ``interval`` seconds, or at the earliest ``next_fire_at`` when that comes sooner, on the injected clock, one
tick on a store thread:

1. reads the active tasks due now (``next_fire_at <= now``), the most overdue first;
2. fails a task whose group is no longer registered, or whose schedule no longer computes, with the reason (it is not
   retried forever);
3. works out which occurrences fire under the task's missed policy (:func:`kanmon.gateway.schedule.due_occurrences`)
   and puts each as a message with the id ``task:<task id>:<occurrence, ISO UTC>``, in the same transaction that
   moves the task's ``next_fire_at`` on (:meth:`kanmon.store.Store.fire_tasks`, fenced by the store lock);
4. but when the task's chat does not belong to its group at that moment, skips them instead (a warning says why; a
   one-shot task is then done with the reason) and moves the task on: its prompt must go to no other group's agent
   and into no chat nobody owns, yet the owner is what routes say now, and a route is edited by removing it and
   adding it again (``gated route`` has no edit), so a firing in between must not end a recurring task for good (a
   failed task cannot be resumed). Once the group owns the chat again, the next occurrence fires.

Exactly once: the message id is derived from the occurrence and ``(chat_jid, id)`` is unique, so whatever stored it
before (a gated killed after the commit and before it knew, a second gated, a restored backup) it is not stored
again; only the holder of the store lock runs a scheduler (a standby does not serve), and a holder that lost the lock
is fenced. The message has verb ``task`` (the impulse gate fires its chat at once), origin ``scheduler``, sender
``task:<id>`` and ``is_bot_message`` set (kanmon speaks for the task, so the command, sticky and prefix layers leave
it alone: a prompt that reads ``/approve …`` is no command). After storing, the loop is woken.

Tasks changed by another process (``gated task add`` in a shell) are seen at the next tick: at most ``interval``
late. The clock going backwards changes nothing (an occurrence is stored once); forwards, it is downtime.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from kanmon.clock import Clock
from kanmon.gateway.context import LayerContext
from kanmon.gateway.decisions import IdleQueue
from kanmon.gateway.gate import TASK_VERB
from kanmon.gateway.hooks import NO_HOOKS, Hooks
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.owner import resolve_owner
from kanmon.gateway.registry import Registry
from kanmon.gateway.schedule import Schedule, due_occurrences, occurrence_id
from kanmon.logcontext import bound
from kanmon.queue import RetryPolicy
from kanmon.stopping import nap
from kanmon.store import FirePlan, NewMessage, Store, Task
from kanmon.store.aio import AsyncStore

__all__ = ["SCHEDULER_ORIGIN", "SchedulerConfig", "SchedulerTick", "TaskScheduler", "occurrence_message", "schedule_of",
           "task_problem"]  # fmt: skip

logger = logging.getLogger(__name__)

SCHEDULER_ORIGIN = "scheduler"
_BACKOFF = RetryPolicy(max_attempts=1, base_delay=0.5, max_delay=30.0, jitter=0.5)


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """``scheduler.*`` settings: seconds between looks at the tasks (also the most a task changed by another process
    fires late), seconds after which an occurrence counts as missed, how many missed occurrences ``all`` fires, and
    how many tasks one transaction fires."""

    interval: float = 1.0
    grace: float = 60.0
    catch_up: int = 10
    batch: int = 1000


@dataclass
class SchedulerTick:
    """What one tick did: messages stored, occurrences skipped, tasks failed or done, and the next fire time."""

    stored: int = 0
    skipped: int = 0
    failed: int = 0
    done: int = 0
    full: bool = False
    next_at: dt.datetime | None = None
    lateness: list[float] = field(default_factory=list)


def schedule_of(task: Task) -> Schedule:
    """The task's schedule (an ``every`` task counts from its creation)."""
    return Schedule(task.kind, task.expression, task.timezone, anchor=task.created_at)


def occurrence_message(task: Task, instant: dt.datetime, *, manual: bool = False) -> NewMessage:
    """The inbound message one occurrence of ``task`` puts into its chat (module docstring)."""
    return NewMessage(
        chat_jid=task.chat_jid,
        id=occurrence_id(task.id, instant, manual=manual),
        content=task.prompt,
        sender=f"task:{task.id}",
        sender_name=f"task {task.id}",
        timestamp=instant,
        verb=TASK_VERB,
        topic=task.topic,
        is_bot_message=True,
        origin=SCHEDULER_ORIGIN,
    )


def task_problem(ctx: LayerContext, folder: str, chat_jid: str) -> str | None:
    """Why a task of ``folder`` cannot put messages into ``chat_jid`` (None when it can): the group must be
    registered and own the chat, or the message would be skipped or run by another group's agent."""
    if ctx.group(folder) is None:
        return f"group {folder} is not registered"
    owner = resolve_owner(ctx, chat_jid)
    if owner.folder != folder:
        return f"chat {chat_jid} does not belong to {folder}: {owner.why}"
    return None


class TaskScheduler:
    """Fires due tasks; see the module docstring. ``on_stored`` is called on the event loop after messages went in."""

    def __init__(
        self,
        db: AsyncStore,
        registry: Registry,
        config: SchedulerConfig,
        *,
        clock: Clock,
        metrics: GatewayMetrics,
        on_stored: Callable[[], None] = lambda: None,
        hooks: Hooks = NO_HOOKS,  # told of each task that fired (task_fired, issue 16 item 6)
    ) -> None:
        self._hooks = hooks
        self._db = db
        self._registry = registry
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._on_stored = on_stored
        self._wake = asyncio.Event()
        self._failures = 0
        #: True while gated has lost its store lock: nothing fires (the writes would be refused anyway).
        self.fenced = False
        self.ticks = 0
        #: What the last tick did (benchmarks read its lateness).
        self.last: SchedulerTick | None = None

    def wake(self) -> None:
        """Look at the tasks now (a task was added or changed in this process)."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick until ``stopping`` is set; a failing tick is logged and retried with backoff, never fatal."""
        while not stopping.is_set():
            self._wake.clear()
            delay = self._config.interval
            if not self.fenced:
                try:
                    delay = await self.tick()
                except Exception as exc:
                    delay = self._failed(exc)
                else:
                    self._failures = 0
            await self._wait(stopping, delay)

    async def tick(self) -> float:
        """Fire what is due now; returns the seconds until the next look."""
        now = self._clock.now()
        done: SchedulerTick = await self._db.once(self.fire_due, now)
        self.ticks += 1
        self.last = done
        if done.stored:
            logger.info("scheduler: %d task occurrence(s) stored", done.stored)
            self._on_stored()
        self._metrics.task_fires.inc(done.stored)
        self._metrics.task_skips.inc(done.skipped)
        self._metrics.task_failures.inc(done.failed)
        if done.full:
            return 0.0
        if done.next_at is None:
            return self._config.interval
        until = (done.next_at - self._clock.now()).total_seconds()
        return min(self._config.interval, max(0.0, until))

    def fire_due(self, now: dt.datetime) -> SchedulerTick:
        """The blocking part of a tick (a store thread): steps 1–3 of the module docstring."""
        store: Store = self._db.store
        due = store.due_tasks(now, self._config.batch)
        result = SchedulerTick(full=len(due) == self._config.batch)
        if due:
            self._registry.refresh()  # only then: an idle tick costs two indexed reads
        ctx = LayerContext(store, IdleQueue(), registry=self._registry, clock=self._clock)
        plans: list[FirePlan] = []
        for task in due:
            plan = self._plan(ctx, task, now, result)
            if plan is not None:
                plans.append(plan)
        if plans:
            for fired in store.fire_tasks(plans, now=now, fenced=True):
                result.stored += fired.stored
                if fired.stored and fired.task is not None:
                    self._hooks.notify("task_fired", task=fired.task, stored=fired.stored)
                if fired.task is not None and fired.task.status == "done" and not fired.stale:
                    result.done += 1
        result.next_at = store.next_fire_time()
        return result

    def _plan(self, ctx: LayerContext, task: Task, now: dt.datetime, result: SchedulerTick) -> FirePlan | None:
        with bound(task=task.id, folder=task.group_folder, chat=task.chat_jid):  # on the lines about this task
            return self._plan_task(ctx, task, now, result)

    def _plan_task(self, ctx: LayerContext, task: Task, now: dt.datetime, result: SchedulerTick) -> FirePlan | None:
        assert task.next_fire_at is not None
        problem = f"group {task.group_folder} is not registered" if ctx.group(task.group_folder) is None else None
        if problem is None:
            try:
                due = due_occurrences(
                    schedule_of(task),
                    task.next_fire_at,
                    now,
                    policy=task.missed,
                    grace=self._config.grace,
                    cap=self._config.catch_up,
                )
            except Exception as exc:  # a schedule that no longer parses (tz data changed): fail it, keep the rest
                problem = f"cannot compute the schedule: {exc}"
        if problem is not None:
            logger.warning("task failed: %s", problem)
            ctx.store.set_task_status(
                task.id, "failed", next_fire_at=None, reason=problem, only_from=["active"],
                expected_next=task.next_fire_at,
            )  # fmt: skip
            result.failed += 1
            return None
        unowned = task_problem(ctx, task.group_folder, task.chat_jid)  # step 4: the group is registered
        if unowned is not None:
            result.skipped += due.skipped + len(due.fire)
            left = due.next_fire_at
            after = f"the task stays active, next fire {left.isoformat()}" if left else "no occurrence left: done"
            logger.warning("task firing skipped: %s; %s", unowned, after)
            return FirePlan(task.id, task.next_fire_at, (), due.next_fire_at, f"its occurrence was skipped: {unowned}")
        result.skipped += due.skipped
        if due.skipped:
            logger.info("%d missed occurrences skipped (missed=%s)", due.skipped, task.missed)
        result.lateness.extend((now - instant).total_seconds() for instant in due.fire)
        messages = tuple(occurrence_message(task, instant) for instant in due.fire)
        reason = None if messages else f"its last occurrence was missed while gated was away (missed={task.missed})"
        return FirePlan(task.id, task.next_fire_at, messages, due.next_fire_at, reason)

    def _failed(self, exc: Exception) -> float:
        self._failures += 1
        delay = _BACKOFF.delay(self._failures)
        if self._failures == 1:
            logger.exception("scheduler tick failed; backing off (nothing was fired twice)")
        else:
            logger.warning("scheduler tick failed again (%d in a row): %s", self._failures, exc)
        return delay

    async def _wait(self, stopping: asyncio.Event, seconds: float) -> None:
        await nap(self._wake, stopping, self._clock, seconds)
