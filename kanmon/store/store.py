"""The Store: the only door to SQL (SPEC §3). Every method is one transaction and returns plain records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from kanmon.clock import Clock
from kanmon.store.actions import ActionStore
from kanmon.store.apikeys import ApiKeyStore
from kanmon.store.approvals import ApprovalStore
from kanmon.store.auth import AuthStore
from kanmon.store.delivery import DeliveryStore
from kanmon.store.engine import make_engine
from kanmon.store.messages import MessageStore
from kanmon.store.operator import OperatorStore
from kanmon.store.registry import RegistryStore
from kanmon.store.resets import ResetStore
from kanmon.store.runs import RunStore
from kanmon.store.status import StatusStore
from kanmon.store.tables import chats, messages, registered_groups, routes, session_log, tasks
from kanmon.store.tasks import TaskStore
from kanmon.store.usage import UsageStore
from kanmon.store.webchat import WebChatStore
from kanmon.store.work import WorkStore

__all__ = ["Store"]


class Store(
    MessageStore,
    RegistryStore,
    WorkStore,
    RunStore,
    DeliveryStore,
    ApprovalStore,
    StatusStore,
    ApiKeyStore,
    TaskStore,
    AuthStore,
    ActionStore,
    UsageStore,
    ResetStore,
    OperatorStore,
    WebChatStore,
):
    """Messages, chats, routing state, groups, routes, sessions, runs, system messages, channels, approvals, API
    keys, scheduled tasks, sender authorisation, agent actions, usage, session resets, what an operator inspects (runs,
    run logs, dead letters, replies), and the web chat's tokens and topic names.

    Methods block: the daemon calls them from worker threads, never on the event loop.
    """

    @classmethod
    def open(cls, url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 5, clock: Clock | None = None) -> Store:
        """A store on ``url`` that stamps with ``clock`` when a caller gives no time (the real clock by default); no
        connection is made until the first operation."""
        return cls(make_engine(url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size), clock=clock)

    def counts(self) -> dict[str, Any]:
        """Row counts for ``gated status`` and ``/status``; ``chats`` counts the chats table, which holds only chats
        with state (how many chats messages came from: :meth:`chat_count`)."""
        with self._read() as conn:

            def count(table: Any, *where: Any) -> int:
                return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

            return {
                "groups": count(registered_groups),
                "routes": count(routes),
                "chats": count(chats),  # rows of the chats table: the chats with state (how many chats: chat_count)
                "messages": count(messages),
                "inbound_new": count(messages, messages.c.direction == "in", messages.c.status == "new"),
                "dead_letters": count(messages, messages.c.status == "dead"),
                "skipped": count(messages, messages.c.status == "skipped"),
                "deliveries_pending": count(messages, messages.c.delivery_status == "pending"),
                "deliveries_failed": count(messages, messages.c.delivery_status == "failed"),
                "runs_in_flight": count(session_log, session_log.c.status.in_(("starting", "running"))),
                "tasks_active": count(tasks, tasks.c.status == "active"),
                "last_seq": int(conn.execute(select(func.coalesce(func.max(messages.c.seq), 0))).scalar_one()),
            }
