"""Groups, routes, sessions, the run log, system messages and channel adapters."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import delete, func, select, text, update

from kanmon.errors import InvalidInput
from kanmon.folders import validate_folder
from kanmon.store.base import StoreBase, from_row, from_rows
from kanmon.store.errors import Conflict, NotFound, PrefixTaken
from kanmon.store.records import IN_FLIGHT, Channel, Group, Route, Run, Session, SystemMessage
from kanmon.store.tables import channels, registered_groups, routes, session_log, sessions, system_messages

__all__ = ["RegistryStore"]

# pg_advisory_xact_lock key for registering channel adapters: "kanmon", then "ch"
CHANNELS_LOCK_KEY = 0x6B616E6D6F6E6368


class RegistryStore(StoreBase):
    """Everything but the message log."""

    # ------------------------------------------------------------------------------------------------ groups
    def add_group(self, group: Group) -> Group:
        """Register ``group``; raises Conflict if its folder is taken, InvalidFolder if malformed."""
        validate_folder(group.folder)
        values = {
            "folder": group.folder,
            "name": group.name or group.folder,
            "added_at": self._stamp(group.added_at),
            "parent": group.parent,
            "container_config": group.container_config,
            "impulse_config": group.impulse_config,
        }
        with self._write(config=True) as conn:
            if conn.execute(
                select(registered_groups.c.folder).where(registered_groups.c.folder == group.folder)
            ).first():
                raise Conflict(f"group {group.folder!r} already exists")
            conn.execute(registered_groups.insert().values(**values))
            return from_row(Group, conn.execute(select(registered_groups).where(_group(group.folder))).one())

    def get_group(self, folder: str) -> Group | None:
        """The group registered at ``folder``, if any."""
        with self._read() as conn:
            row = conn.execute(select(registered_groups).where(_group(folder))).first()
            return None if row is None else from_row(Group, row)

    def list_groups(self) -> list[Group]:
        """Every registered group, by folder."""
        with self._read() as conn:
            rows = conn.execute(select(registered_groups).order_by(registered_groups.c.folder))
            return [from_row(Group, row) for row in rows]

    def remove_group(self, folder: str, *, routes_to: Collection[str] = (), with_routes: bool = False) -> list[Route]:
        """Unregister ``folder`` (its sessions and queued system messages go with it); return the routes removed.

        ``routes_to`` are the targets that name this folder (the router knows how they are spelled:
        :func:`kanmon.router.folder_targets`). Routes with one of them block the removal (:class:`Conflict`, naming
        them) unless ``with_routes``, which removes them in the same transaction. NotFound if ``folder`` is absent.
        """
        with self._write(config=True) as conn:
            if conn.execute(select(registered_groups.c.folder).where(_group(folder))).first() is None:
                raise NotFound(f"no group {folder!r}")
            pointing = routes.c.target.in_(list(routes_to))
            found = from_rows(Route, conn.execute(select(routes).where(pointing).order_by(routes.c.id)))
            if found and not with_routes:
                plural = "s" if len(found) > 1 else ""
                ids = ", ".join(str(route.id) for route in found)
                raise Conflict(f"group {folder!r} is the target of route{plural} {ids}")
            if found:
                conn.execute(delete(routes).where(routes.c.id.in_([route.id for route in found])))
            conn.execute(delete(registered_groups).where(_group(folder)))
            return found

    def update_group_config(self, folder: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Group:
        """Replace ``folder``'s ``container_config`` with ``change(current)``, in one transaction; the new group.

        ``change`` sees the configuration as stored at that moment (two concurrent updates never lose one another's
        change) and may raise to leave it as it was. NotFound if ``folder`` is absent. Bumps the configuration
        version, so every cache (and the next run of the group) sees the change.
        """
        with self._write(config=True) as conn:
            query = select(registered_groups.c.container_config).where(_group(folder)).with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise NotFound(f"no group {folder!r}")
            config = change(dict(row.container_config or {}))
            conn.execute(update(registered_groups).where(_group(folder)).values(container_config=config))
            return from_row(Group, conn.execute(select(registered_groups).where(_group(folder))).one())

    # ------------------------------------------------------------------------------------------------ routes
    def add_route(self, *, seq: int, match: str, target: str, impulse_config: str | None = None) -> Route:
        """Store a route as given (validating it is the router's job, before calling this). Raises InvalidInput for
        a ``seq`` outside the 32-bit column PostgreSQL keeps it in, on every backend alike."""
        if not -(2**31) <= seq < 2**31:
            raise InvalidInput(f"route seq {seq} is out of range: a 32-bit integer")
        values = {"seq": seq, "match": match, "target": target, "impulse_config": impulse_config}
        with self._write(config=True) as conn:
            row = conn.execute(routes.insert().values(**values).returning(*routes.c)).one()
            return from_row(Route, row)

    def list_routes(self) -> list[Route]:
        """Every route, in the order the router walks them: ``(seq, id)``."""
        with self._read() as conn:
            return from_rows(Route, conn.execute(select(routes).order_by(routes.c.seq, routes.c.id)))

    def remove_route(self, route_id: int) -> None:
        """Delete route ``route_id``; NotFound if absent."""
        with self._write(config=True) as conn:
            if conn.execute(delete(routes).where(routes.c.id == route_id)).rowcount == 0:
                raise NotFound(f"no route {route_id}")

    # ------------------------------------------------------------------------------------------------ sessions
    def get_session(self, folder: str, topic: str = "") -> Session | None:
        """The agent session of ``(folder, topic)``."""
        with self._read() as conn:
            row = conn.execute(select(sessions).where(*_session(folder, topic))).first()
            return None if row is None else from_row(Session, row)

    def set_session(self, folder: str, topic: str, session_id: str, *, now: dt.datetime | None = None) -> None:
        """Remember the agent's session id for ``(folder, topic)``, stamped ``now``."""
        values = {
            "group_folder": folder,
            "topic": topic,
            "session_id": session_id,
            "updated_at": self._stamp(now),
        }
        with self._write() as conn:
            conn.execute(self._upsert(sessions, values, ["group_folder", "topic"]))

    def delete_session(self, folder: str, topic: str = "") -> bool:
        """Forget the session of ``(folder, topic)``; True if there was one."""
        with self._write() as conn:
            return bool(conn.execute(delete(sessions).where(*_session(folder, topic))).rowcount)

    # ------------------------------------------------------------------------------------------------ session_log
    def start_run(self, run: Run) -> None:
        """Record a run before its container starts (status ``starting``)."""
        values = dataclasses.asdict(run)
        with self._write() as conn:
            conn.execute(session_log.insert().values(**values))

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change fields of run ``run_id`` (status, container, output_count, ended_at, error…)."""
        with self._write(fenced=True) as conn:
            if conn.execute(update(session_log).where(session_log.c.id == run_id).values(**fields)).rowcount == 0:
                raise NotFound(f"no run {run_id!r}")

    def get_run(self, run_id: str) -> Run | None:
        """The run ``run_id``."""
        with self._read() as conn:
            row = conn.execute(select(session_log).where(session_log.c.id == run_id)).first()
            return None if row is None else from_row(Run, row)

    def runs_in_flight(self, instance: str | None = None) -> list[Run]:
        """Runs still ``starting`` or ``running`` (of ``instance`` only, when given): what a restart must reclaim."""
        query = select(session_log).where(session_log.c.status.in_(IN_FLIGHT)).order_by(session_log.c.started_at)
        if instance is not None:
            query = query.where(session_log.c.instance == instance)
        with self._read() as conn:
            return from_rows(Run, conn.execute(query))

    # ------------------------------------------------------------------------------------------------ system messages
    def add_system_message(
        self, folder: str, *, origin: str, event: str, body: str = "", now: dt.datetime | None = None
    ) -> SystemMessage:
        """Queue a note for ``folder``'s next prompt, stamped ``now``."""
        stamp = self._stamp(now)
        values = {"group_folder": folder, "origin": origin, "event": event, "body": body, "created_at": stamp}
        with self._write() as conn:
            row = conn.execute(system_messages.insert().values(**values).returning(*system_messages.c)).one()
            return from_row(SystemMessage, row)

    def system_messages_for(self, folder: str) -> list[SystemMessage]:
        """The notes queued for ``folder``, oldest first."""
        query = select(system_messages).where(system_messages.c.group_folder == folder).order_by(system_messages.c.id)
        with self._read() as conn:
            return from_rows(SystemMessage, conn.execute(query))

    # ------------------------------------------------------------------------------------------------ channels
    def save_channel(self, channel: Channel) -> None:
        """Register or re-register a channel adapter (by name: a new token hash, url, prefixes, capabilities).

        A JID prefix belongs to one adapter at a time (SPEC §11: replies go to the adapter that owns the chat's
        JID): raises :class:`PrefixTaken` naming the owner when one of ``channel.jid_prefixes`` overlaps (equals, or
        starts or is started by) a prefix of another adapter; the adapter's own prefixes may overlap each other and
        change freely. Check and write are one transaction, so two adapters registering at once cannot both win.
        """
        values = dataclasses.asdict(channel)
        with self._write(config=True) as conn:
            if self.dialect == "postgresql":
                # READ COMMITTED would let two registrations each see the other's prefix free; SQLite's BEGIN
                # IMMEDIATE already serialises writers
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANNELS_LOCK_KEY})
            others = select(channels.c.name, channels.c.jid_prefixes).where(channels.c.name != channel.name)
            for owner, owned in conn.execute(others):
                _refuse_overlap(channel.jid_prefixes, owned, owner)
            conn.execute(self._upsert(channels, values, ["name"]))

    def list_channels(self) -> list[Channel]:
        """Every registered channel adapter."""
        with self._read() as conn:
            return from_rows(Channel, conn.execute(select(channels).order_by(channels.c.name)))

    def remove_channel(self, name: str) -> bool:
        """Deregister ``name``; True if it was registered."""
        with self._write(config=True) as conn:
            return bool(conn.execute(delete(channels).where(channels.c.name == name)).rowcount)

    # ------------------------------------------------------------------------------------------------ status
    def count_runs(self, since: dt.datetime | None = None) -> dict[str, int]:
        """Runs by status (since ``since`` when given)."""
        query = select(session_log.c.status, func.count()).group_by(session_log.c.status)
        if since is not None:
            query = query.where(session_log.c.started_at >= since)
        with self._read() as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}


def _refuse_overlap(claimed: list[str], owned: list[str], owner: str) -> None:
    for prefix in claimed:
        for theirs in owned:
            if prefix.startswith(theirs) or theirs.startswith(prefix):
                raise PrefixTaken(prefix, owned=theirs, owner=owner)


def _group(folder: str) -> Any:
    return registered_groups.c.folder == folder


def _session(folder: str, topic: str) -> tuple[Any, Any]:
    return sessions.c.group_folder == folder, sessions.c.topic == topic
