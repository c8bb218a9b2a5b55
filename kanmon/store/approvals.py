"""Onboarding approval (SPEC §11) as one transaction: the chat's route, the decision, and the re-posted message.

Written one after the other, a failure between them left a chat routed but still ``pending`` (a retry then failed
with "already belongs to"), or decided with its waiting message never answered. Here they commit together or not
at all, and each part is written only if it is not there yet, so a retry after a failure, or a second approval,
finishes the job without doing anything twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from kanmon.store.appends import append_message, lock_appends
from kanmon.store.base import StoreBase, from_row
from kanmon.store.errors import NotFound
from kanmon.store.records import Message, NewMessage, Route
from kanmon.store.tables import registered_groups, router_state, routes

__all__ = ["ApprovalStore", "RecordedApproval"]


@dataclass(frozen=True, slots=True)
class RecordedApproval:
    """What :meth:`ApprovalStore.record_approval` found and did; ``changed`` is False when all of it was there."""

    route: Route
    route_added: bool
    decision_changed: bool
    reposted: Message | None
    repost_added: bool

    @property
    def changed(self) -> bool:
        """True when the approval wrote anything."""
        return self.route_added or self.decision_changed or self.repost_added


class ApprovalStore(StoreBase):
    """The onboarding approval transaction."""

    def record_approval(
        self,
        *,
        folder: str,
        match: str,
        decision_key: str,
        decision: str,
        repost: NewMessage | None,
        now: dt.datetime | None = None,
    ) -> RecordedApproval:
        """In one transaction: route ``match`` to ``folder``, set router_state ``decision_key``, append ``repost``.

        The route is added unless one with exactly this ``match`` and target ``folder`` exists (the oldest such is
        returned then); ``repost`` is appended unless its ``(chat_jid, id)`` is stored already, as
        :meth:`~kanmon.store.messages.MessageStore.put_message` does. All of it is written, or none of it. Raises
        :class:`NotFound` when ``folder`` is not a registered group (it may have been removed since it was checked).
        Validating the route is the caller's job, as for :meth:`~kanmon.store.registry.RegistryStore.add_route`.
        """
        with self._write() as conn:
            # First: on PostgreSQL this serialises approvals too, so two at once cannot both add the route.
            lock_appends(conn)
            group = select(registered_groups.c.folder).where(registered_groups.c.folder == folder)
            if conn.execute(group).first() is None:
                raise NotFound(f"no group {folder!r}")
            query = select(routes).where(routes.c.match == match, routes.c.target == folder).order_by(routes.c.id)
            row = conn.execute(query.limit(1)).first()
            route_added = row is None
            if row is None:
                row = conn.execute(routes.insert().values(seq=0, match=match, target=folder).returning(*routes.c)).one()
                self._config_changed(conn)
            current = conn.execute(select(router_state.c.value).where(router_state.c.key == decision_key)).scalar()
            decision_changed = current != decision
            if decision_changed:
                conn.execute(self._upsert(router_state, {"key": decision_key, "value": decision}, ["key"]))
            put = append_message(conn, repost, self._stamp(now)) if repost is not None else None
            return RecordedApproval(
                route=from_row(Route, row),
                route_added=route_added,
                decision_changed=decision_changed,
                reposted=put.message if put is not None else None,
                repost_added=put is not None and put.created,
            )
