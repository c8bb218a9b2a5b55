"""Groups, routes, channels and the sender allowlist in memory, re-read only when they change (issue 13).

The loop used to read every group and route on every tick (19 ms per tick at 1,000 groups) and the deliverers every
channel on every pass. Every write to those tables, by any process, bumps the store's configuration version in the
same transaction (:meth:`kanmon.store.Store.config_version`); :meth:`Registry.refresh` compares it (one indexed read)
and reloads only when it moved. The loop refreshes at the start of every tick, so a group added by ``gated group
add`` in another process routes from the next tick on. Runs take their group from here too (a ``gated group set``
counts from the next tick, which every new message comes with); a retry, which no tick precedes, reads the group's row
(:mod:`kanmon.gateway.runner`).
"""

from __future__ import annotations

import logging
import threading

from kanmon.router import Route
from kanmon.store import AllowEntry, Channel, Group, Store

__all__ = ["Registry"]

logger = logging.getLogger(__name__)


class Registry:
    """The configuration the gateway routes and delivers by, cached by the store's configuration version."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()  # refreshed from a store thread, read from the event loop
        self.version: int | None = None
        self.groups: dict[str, Group] = {}
        self.routes: list[Route] = []
        self.channels: list[Channel] = []
        self.allow: list[AllowEntry] = []  # the sender allowlist (kanmon.gateway.auth)

    def refresh(self) -> bool:
        """Reload if the configuration changed since the last look (blocking; a store thread); True if it did."""
        version = self._store.config_version()
        if version == self.version:
            return False
        groups = {group.folder: group for group in self._store.list_groups()}
        routes = [
            Route(id=r.id, seq=r.seq, match=r.match, target=r.target, impulse_config=r.impulse_config)
            for r in self._store.list_routes()
        ]
        channels = self._store.list_channels()
        allow = self._store.list_allow()
        with self._lock:
            self.groups, self.routes, self.channels, self.version = groups, routes, channels, version
            self.allow = allow
        logger.debug("configuration version %d: %d groups, %d routes, %d channels", version, len(groups), len(routes),
                     len(channels))  # fmt: skip
        return True
