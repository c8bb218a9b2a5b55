"""Session reset policies and the memory flush turn (issue 16 items 2 and 3): the rules, pure and table-tested.

A group's session policy lives in its ``container_config`` (``gated group set --session-reset …``), over gated's
defaults (the ``session_*`` keys of kanmon.yaml):

=========================== =================================================================================
``session_reset``           ``none``, ``idle``, ``daily`` or ``both`` (whichever comes first)
``session_idle_expiry``     seconds of silence after which ``idle`` resets (0: never; SPEC §10's idle expiry)
``session_reset_hour``      the local hour (0–23) at which ``daily`` resets, in the group's ``timezone``
``session_reset_notice``    tell the chat "session reset: idle for 24h" when a policy resets its session
``session_reset_platforms`` per platform (``telegram``, ``web``…): ``{"mode", "idle", "hour"}`` over the above
``memory_flush``            run the agent once more, with the old session, before a session is discarded
``memory_flush_prompt``     what that turn asks; ``memory_flush_timeout`` bounds it (seconds)
=========================== =================================================================================

Expiry is judged from the session's stored ``updated_at`` (its last run's end) and the injected clock's ``now``, so
a restart changes nothing. The idle check runs first, so ``both`` reports ``idle`` when both hold (as Hermes did).
The daily boundary is the latest local ``hour:00`` at or before ``now``; across a DST change it is still one
boundary a day (a wall time skipped by the change reads with the offset before it, so 02:00 on a spring-forward
night is the instant the clocks jump; a repeated one is its first occurrence).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal
from zoneinfo import ZoneInfo

from kanmon.errors import InvalidInput
from kanmon.gateway.schedule import parse_zone

__all__ = [
    "DEFAULT_FLUSH_PROMPT",
    "MAX_IDLE",
    "MIN_IDLE",
    "MODES",
    "Expiry",
    "Flush",
    "Mode",
    "ResetPolicy",
    "daily_boundary",
    "expiry",
    "flush_for",
    "human_duration",
    "mode_of",
    "policy_for",
]

Mode = Literal["none", "idle", "daily", "both"]
MODES: Final[tuple[Mode, ...]] = ("none", "idle", "daily", "both")
#: The idle lengths a policy may set (seconds), 0 (never) aside: under a second is no silence a chat or the expiry
#: watcher could tell from none, and over a year one no session waits out (a value past it could never act).
MIN_IDLE: Final = 1.0
MAX_IDLE: Final = 365 * 86400.0
DEFAULT_FLUSH_PROMPT: Final = (
    "Your session is about to be reset. Save what is worth remembering to your memory files now; do not reply."
)


@dataclass(frozen=True, slots=True)
class ResetPolicy:
    """When a session is reset automatically: ``mode``, the idle length (seconds, 0: never), the daily hour in
    ``zone``, and whether the chat is told."""

    mode: Mode = "none"
    idle: float = 0.0
    hour: int = 4
    zone: str = "UTC"
    notice: bool = False


@dataclass(frozen=True, slots=True)
class Expiry:
    """Why a session expired: ``reason`` ``idle`` or ``daily``, and ``detail`` the words the chat and agent read."""

    reason: Literal["idle", "daily"]
    detail: str


@dataclass(frozen=True, slots=True)
class Flush:
    """The memory flush turn of a group: its prompt and its own timeout (seconds)."""

    prompt: str
    timeout: float


def human_duration(seconds: float) -> str:
    """``86400`` → ``24h``, ``5400`` → ``1h30m``, ``90`` → ``1m30s``: the notice's words for an idle length."""
    rest = max(0, round(seconds))
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def daily_boundary(now: dt.datetime, hour: int, zone: ZoneInfo) -> dt.datetime:
    """The latest instant at or before ``now`` (aware) whose wall time in ``zone`` is ``hour:00``."""
    local = now.astimezone(zone)
    for back in range(3):  # today's, else yesterday's (a DST gap can push today's a little later)
        day = local.date() - dt.timedelta(days=back)
        # fold=0 (PEP 495): a wall time the change skipped reads with the offset before it, a repeated one is its
        # first occurrence
        instant = dt.datetime.combine(day, dt.time(hour), tzinfo=zone).astimezone(dt.UTC)
        if instant <= now:
            return instant
    raise AssertionError("unreachable: yesterday's boundary is always in the past")  # pragma: no cover


def expiry(policy: ResetPolicy, last_activity: dt.datetime, now: dt.datetime) -> Expiry | None:
    """Whether a session last active at ``last_activity`` has expired by ``now`` under ``policy`` (None: it lives).

    Idle first: ``both`` says ``idle`` when both hold. A session active after the latest daily boundary lives.
    """
    if policy.mode in ("idle", "both") and policy.idle > 0:
        silent = (now - last_activity).total_seconds()
        if silent > policy.idle:
            return Expiry("idle", f"idle for {human_duration(silent)}")
    if policy.mode in ("daily", "both"):
        zone = _zone(policy.zone)
        if last_activity < daily_boundary(now, policy.hour, zone):
            return Expiry("daily", f"daily reset at {policy.hour:02d}:00 {zone.key}")
    return None


def policy_for(config: Mapping[str, object], platform: str, default: ResetPolicy) -> ResetPolicy:
    """The reset policy of a group's chats on ``platform``: its ``session_reset_platforms[platform]`` over its own
    settings over ``default`` (gated's). A value written by hand that makes no sense counts as unset."""
    policy = ResetPolicy(
        mode=mode_of(config.get("session_reset"), default.mode),
        idle=_seconds(config.get("session_idle_expiry"), default.idle),
        hour=_hour(config.get("session_reset_hour"), default.hour),
        zone=_zone_name(config.get("timezone"), default.zone),
        notice=_flag(config.get("session_reset_notice"), default.notice),
    )
    overrides = config.get("session_reset_platforms")
    override = overrides.get(platform) if isinstance(overrides, Mapping) else None
    if not isinstance(override, Mapping):
        return policy
    return replace(
        policy,
        mode=mode_of(override.get("mode"), policy.mode),
        idle=_seconds(override.get("idle"), policy.idle),
        hour=_hour(override.get("hour"), policy.hour),
    )


def flush_for(config: Mapping[str, object], default: Flush) -> Flush | None:
    """The group's memory flush turn (``memory_flush`` on), or None when it has none."""
    if config.get("memory_flush") is not True:
        return None
    prompt = config.get("memory_flush_prompt")
    return Flush(
        prompt=prompt if isinstance(prompt, str) and prompt.strip() else default.prompt,
        timeout=_seconds(config.get("memory_flush_timeout"), default.timeout) or default.timeout,
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return parse_zone(name)
    except InvalidInput:
        return ZoneInfo("UTC")


def mode_of(value: object, default: Mode) -> Mode:
    """``value`` as a :data:`Mode` when it is one, else ``default``."""
    for mode in MODES:
        if value == mode:
            return mode
    return default


def _seconds(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return default
    return float(value)


def _hour(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 23 else default


def _zone_name(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _flag(value: object, default: bool) -> bool:
    return value if isinstance(value, bool) else default
