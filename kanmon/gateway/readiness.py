"""``/readyz``'s answer: why a gated cannot do its work right now (SPEC §13)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kanmon.gateway.spec import runtime_name
from kanmon.store import StoreError

if TYPE_CHECKING:
    from kanmon.gateway.service import Gateway

__all__ = ["readiness"]


async def readiness(gateway: Gateway) -> list[str]:
    """Why this gated cannot do its work right now (``/readyz``); empty when it can."""
    waiting = gateway.waiting()
    reasons = [reason for reason in (waiting, gateway.fenced) if reason is not None]
    if gateway.db.outage is not None:
        return [*reasons, f"store unreachable: {gateway.db.outage}"]
    if waiting is not None:
        return reasons  # not serving yet: nothing else to look at
    try:
        groups = await gateway.db.once(gateway.store.list_groups)
        free = await gateway.db.once(gateway.store.free_space)
    except StoreError as exc:
        reasons.append(f"store unreachable: {exc}")
        groups, free = [], None
    if free is not None and free < gateway.config.min_free_bytes:
        reasons.append(f"store file system nearly full: {free >> 20} MiB free (store.min_free_space)")
    for name in sorted({runtime_name(group, gateway.config.run) for group in groups}):
        runtime = gateway.runtimes.get(name)
        if runtime is None:
            reasons.append(f"runtime {name} is not available in this gated")
        elif not await runtime.available():
            reasons.append(f"runtime {name} unreachable")
    limit = 3 * gateway.config.loop.poll_interval
    last = gateway.loop.last_tick_at
    if last is None:
        reasons.append("starting: the loop has not completed its first tick yet")
    elif gateway.clock.monotonic() - last > limit:
        reasons.append(f"the loop has not completed a tick in the last {limit:g}s")
    return reasons
