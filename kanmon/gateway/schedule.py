"""Task schedules (issue 15): parse them, and compute when they fire. Pure: no I/O, the time is always an argument.

Three kinds, each stored as ``(kind, expression, zone)``:

- ``cron``: a five-field cron expression (parsed by ``croniter``; ``@daily`` and friends too) read as wall-clock
  time in an IANA zone (``zoneinfo``). DST, the way Vixie cron does it: a time the zone skips (02:30 on the night
  clocks go forward) fires once, at the same offset after the jump (03:30); a time the zone repeats fires once, the
  first time, unless the expression's hour field is ``*`` (an hourly or finer task fires in both copies of the hour,
  as elapsed time asks). Occurrences are strictly increasing instants: never the same instant twice.
- ``every``: a fixed interval in whole seconds (at least :data:`MIN_INTERVAL`), counted from an anchor (the task's
  creation), independent of any zone: ``anchor + k * interval`` for k ≥ 1.
- ``at``: one instant (stored as ISO 8601 UTC), then the task is done.

croniter is imported by the functions that use it: a gated with no cron task never loads it and dateutil (0.9 MiB of
resident memory, issue 13).

Every datetime in and out is aware; results are UTC, truncated to whole seconds (occurrence ids use them).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kanmon.errors import InvalidInput
from kanmon.message_ids import derived_id

if TYPE_CHECKING:
    from croniter import croniter

__all__ = [
    "MAX_DURATION",
    "MIN_INTERVAL",
    "Due",
    "MissedPolicy",
    "Schedule",
    "ScheduleKind",
    "due_occurrences",
    "format_duration",
    "occurrence_id",
    "parse_at",
    "parse_duration",
    "parse_schedule",
    "parse_zone",
]

ScheduleKind = Literal["cron", "every", "at"]
MissedPolicy = Literal["latest", "skip", "all"]

#: The shortest ``every`` interval (seconds): a task is a turn of an agent, not a heartbeat.
MIN_INTERVAL = 60
#: The longest duration taken (an ``every`` interval, a ``+DURATION``): 100 years; past it dates overflow.
MAX_DURATION = 100 * 365 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Offset changes never move a wall clock by more than this; near one, the careful search looks this far around.
_SHIFT = dt.timedelta(hours=3)
_SCAN_LIMIT = 1000  # missed occurrences walked one by one before jumping close to now
_CAREFUL_LIMIT = 2000  # wall times the search near an offset change looks at, at most (every minute: 6 h)
_UTC = dt.UTC


def parse_duration(text: str) -> int:
    """Seconds in ``text``: one or more ``<int><unit>`` with unit s, m, h, d or w (``90s``, ``1h30m``, ``2d``).

    Raises :class:`InvalidInput` for anything else, or for zero.
    """
    spec = text.strip().lower()
    parts = re.findall(r"(\d+)([smhdw])", spec)
    if re.fullmatch(r"(?:\d+[smhdw])+", spec) is None:
        raise InvalidInput(f"invalid duration {text!r}: use e.g. 90s, 15m, 2h, 1h30m, 1d, 1w")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise InvalidInput(f"invalid duration {text!r}: must be more than zero")
    if seconds > MAX_DURATION:
        raise InvalidInput(f"invalid duration {text!r}: too long (at most {format_duration(MAX_DURATION)})")
    return seconds


def format_duration(seconds: int) -> str:
    """``seconds`` the way :func:`parse_duration` reads it back (``5400`` → ``1h30m``)."""
    out = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Berlin``, ``UTC``); raises :class:`InvalidInput` for an unknown one."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin") from None


def parse_at(text: str, zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The instant ``text`` names, in UTC: ``+DURATION`` (from ``now``) or ISO 8601 (``2026-12-01T09:00``, wall time
    in ``zone`` unless it carries an offset, e.g. ``…+01:00`` or ``…Z``). Must lie after ``now``.

    A wall time the zone skips is read at the offset before the jump (02:30 → 03:30), a repeated one as the first.
    Raises :class:`InvalidInput`.
    """
    spec = text.strip()
    if spec.startswith("+"):
        at = now + dt.timedelta(seconds=parse_duration(spec[1:]))
    else:
        try:
            parsed = dt.datetime.fromisoformat(spec.replace("Z", "+00:00") if spec.endswith("Z") else spec)
        except ValueError:
            raise InvalidInput(f"invalid time {text!r}: use ISO 8601 (2026-12-01T09:00) or +DURATION (+2h)") from None
        at = parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed
    try:
        at = _whole(at.astimezone(_UTC))
    except OverflowError:  # past the year 9999 in UTC
        raise InvalidInput(f"time {text!r} is too far in the future") from None
    if at <= now:
        raise InvalidInput(f"time {text!r} ({at.isoformat()}) is not in the future")
    if (at - now).total_seconds() > MAX_DURATION:
        raise InvalidInput(f"time {text!r} is too far in the future (at most {format_duration(MAX_DURATION)} ahead)")
    return at


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: its kind, the stored expression, the zone cron times are read in, and the ``every``
    anchor (aware; the task's creation)."""

    kind: ScheduleKind
    expression: str
    zone: str = "UTC"
    anchor: dt.datetime | None = None

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first occurrence strictly after ``after`` (aware), in UTC; None when there is none any more."""
        after = after.astimezone(_UTC)
        if self.kind == "at":
            at = dt.datetime.fromisoformat(self.expression).astimezone(_UTC)
            return at if at > after else None
        if self.kind == "every":
            anchor, interval = _whole(self.anchor or after), int(self.expression)
            if after < anchor:
                return anchor + dt.timedelta(seconds=interval)
            periods = int((after - anchor).total_seconds()) // interval + 1
            return anchor + dt.timedelta(seconds=periods * interval)
        return _cron_next(self.expression, parse_zone(self.zone), _whole(after))


def parse_schedule(kind: ScheduleKind, text: str, *, zone: str, now: dt.datetime) -> tuple[Schedule, dt.datetime]:
    """Validate a schedule as a user gave it; returns it (as stored) and its first occurrence after ``now``.

    ``cron``: the expression; ``every``: a duration (:func:`parse_duration`, at least :data:`MIN_INTERVAL`);
    ``at``: :func:`parse_at`. Raises :class:`InvalidInput` for a bad expression, zone or time, or a schedule that
    never fires (``0 0 31 2 *``).
    """
    tz = parse_zone(zone)
    if kind == "cron":
        from croniter import croniter

        if len(text.split()) != 5 and not text.strip().startswith("@"):
            raise InvalidInput(f"invalid cron expression {text!r}: five fields, minute hour day month weekday")
        if not croniter.is_valid(text.strip()):
            raise InvalidInput(
                f"invalid cron expression {text!r}: a field is out of range or malformed (minute 0-59, hour 0-23,"
                " day 1-31, month 1-12, weekday 0-7)"
            )
        schedule = Schedule("cron", text.strip(), zone)
    elif kind == "every":
        seconds = parse_duration(text)
        if seconds < MIN_INTERVAL:
            raise InvalidInput(f"interval {text!r} is too short: at least {format_duration(MIN_INTERVAL)}")
        schedule = Schedule("every", str(seconds), zone, anchor=_whole(now))
    else:
        schedule = Schedule("at", parse_at(text, tz, now).isoformat(), zone)
    first = schedule.next_after(now)
    if first is None:
        raise InvalidInput(f"schedule {text!r} never fires")
    return schedule, first


def occurrence_id(task_id: int, instant: dt.datetime, *, manual: bool = False) -> str:
    """The message id of one occurrence: ``task:<id>:<instant ISO UTC>`` (``task:<id>:manual:<…>`` for run-now)."""
    stamp = instant.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return derived_id("task:", task_id, *(["manual"] if manual else []), stamp, sep=":")


@dataclass(frozen=True, slots=True)
class Due:
    """What a task owes at some instant: the occurrences to fire now (oldest first), how many are skipped, and the
    next occurrence after them (None: the schedule has no more)."""

    fire: tuple[dt.datetime, ...]
    skipped: int
    next_fire_at: dt.datetime | None


def due_occurrences(
    schedule: Schedule,
    next_fire_at: dt.datetime,
    now: dt.datetime,
    *,
    policy: MissedPolicy,
    grace: float,
    cap: int,
) -> Due:
    """The occurrences from ``next_fire_at`` up to ``now`` and what to do with them under ``policy``.

    An occurrence more than ``grace`` seconds old is *missed* (gated was down or stopped): ``latest`` fires only the
    newest occurrence due; ``skip`` fires none that was missed (one still within ``grace`` fires); ``all`` fires
    each, but at most the newest ``cap`` of them. The rest count as skipped.
    """
    window: deque[dt.datetime] = deque(maxlen=max(cap, 1))
    count = 0
    following: dt.datetime | None = next_fire_at.astimezone(_UTC)
    while following is not None and following <= now:
        window.append(following)
        count += 1
        if count % _SCAN_LIMIT == 0:
            # a long outage (an every-minute task down for weeks): jump close to now rather than walk every
            # occurrence; the occurrences jumped over count as one skip
            jumped = _near(schedule, following, now)
            if jumped is not None:
                following, count = jumped, count + 1
                continue
        following = schedule.next_after(following)
    newest = list(window)
    if policy == "all":
        fire = newest[-cap:] if cap > 0 else []
    elif policy == "latest":
        fire = newest[-1:]
    else:
        fresh_after = now - dt.timedelta(seconds=grace)
        fire = [instant for instant in newest[-1:] if instant >= fresh_after]
    return Due(tuple(fire), max(0, count - len(fire)), following)


def _near(schedule: Schedule, after: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """An occurrence not long before ``now`` and well after ``after``, or None when there is none to jump to."""
    for span in (dt.timedelta(hours=2), dt.timedelta(days=2), dt.timedelta(days=62), dt.timedelta(days=400)):
        start = now - span
        if start > after:
            found = schedule.next_after(start)
            if found is not None and found <= now:
                return found
    return None


# ------------------------------------------------------------------------------------------------------ cron
_WALKERS = threading.local()
_WALKERS_KEPT = 4096  # expressions per thread


@functools.lru_cache(maxsize=8192)
def _cron_next(expression: str, zone: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """The first cron occurrence after ``after`` (UTC, whole seconds). Away from an offset change the wall clock maps
    one to one onto instants and the first wall time after ``after``'s is the answer; near one, look around.
    Remembered: the thousands of tasks of a burst ("every day at 9") mostly ask the same question."""
    from croniter import CroniterBadDateError

    every_hour = _every_hour(expression)
    try:
        if _offset(after - _SHIFT, zone) == _offset(after + _SHIFT, zone) == _offset(after, zone):
            wall = _walker(expression, _wall(after, zone)).get_next(dt.datetime)
            return _instants(wall, zone, every_hour)[0]
        return _cron_next_near_change(expression, zone, after, every_hour)
    except CroniterBadDateError:
        return None


def _walker(expression: str, start: dt.datetime) -> croniter:
    """A croniter of ``expression`` standing at ``start``: one per expression and thread, moved rather than made anew
    (parsing the expression is most of its cost, and a burst of thousands of tasks shares a few expressions)."""
    from croniter import croniter

    walkers: dict[str, croniter] = _WALKERS.__dict__.setdefault("by_expression", {})
    walker = walkers.get(expression)
    if walker is None:
        if len(walkers) >= _WALKERS_KEPT:
            walkers.clear()
        walker = walkers[expression] = croniter(expression, start)
    else:
        walker.set_current(start, force=True)
    return walker


@functools.lru_cache(maxsize=4096)
def _every_hour(expression: str) -> bool:
    """Whether the cron expression's hour field is ``*`` (parsed once per expression: a burst of thousands of tasks
    shares a few)."""
    from croniter import croniter

    return bool(croniter(expression).expressions[1] == "*")


def _cron_next_near_change(expression: str, zone: ZoneInfo, after: dt.datetime, every_hour: bool) -> dt.datetime:
    """The careful search: every wall time from ``after - 3 h`` on, both folds, the least instant after ``after``."""
    from croniter import CroniterBadDateError, croniter

    walls = croniter(expression, _wall(after - _SHIFT, zone))
    best: dt.datetime | None = None
    for _ in range(_CAREFUL_LIMIT):
        wall = walls.get_next(dt.datetime)
        instants = _instants(wall, zone, every_hour)
        for instant in instants:
            if instant > after and (best is None or instant < best):
                best = instant
        if best is not None and instants[0] > best + _SHIFT:
            break
    if best is None:
        raise CroniterBadDateError("no occurrence found")
    return best


def _instants(wall: dt.datetime, zone: ZoneInfo, both_folds: bool) -> list[dt.datetime]:
    """The instants a naive wall time stands for: one (fold 0: a skipped time at the offset before the jump, a
    repeated one the first time), or both copies of a repeated time when ``both_folds``."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(_UTC)
    repeated = second > first and second.astimezone(zone).replace(tzinfo=None) == wall
    return [first, second] if both_folds and repeated else [first]


def _wall(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _offset(instant: dt.datetime, zone: ZoneInfo) -> dt.timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _whole(instant: dt.datetime) -> dt.datetime:
    return instant.replace(microsecond=0)
