"""Routes as plain values and their resolution (SPEC §6.4): walk in ``(seq, id)`` order, first match wins.

Resolution never raises and does no I/O: routes arrive as :class:`Route` values from whoever read them. A route is
passed over when its match fails, when it holds a malformed glob (which matches nothing), when its target needs a
``{sender}`` id the message's sender cannot give, when its expanded target is not valid, or when a ``{sender}``
target expands to a folder that is not among the registered ``folders`` the caller passes. :func:`trace` keeps the
verdict for every route it looked at, so ``gated route test`` can say which route took a message and why the earlier
ones did not; :func:`resolve` is the same walk for the message loop.

:func:`validate_route` is the check made before a route is stored: :func:`check_route` (its text alone) and that its
target names a registered group or a configured daemon, which the caller passes in as plain values.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from kanmon.router.errors import RouteError
from kanmon.router.impulse import ImpulseConfig, parse_impulse_config
from kanmon.router.match import MessageFields, TermResult, check_match, parse_match
from kanmon.router.targets import (
    SENDER_PLACEHOLDER,
    Target,
    TargetKind,
    check_target_known,
    expand_target,
    parse_target,
    validate_target,
)

__all__ = [
    "MAX_SEQ",
    "Route",
    "RouteCheck",
    "RouteDecision",
    "RouteTrace",
    "Verdict",
    "check_route",
    "check_seq",
    "ordered",
    "resolve",
    "trace",
    "validate_route",
]


#: The largest ``seq`` a route may have (and ``-MAX_SEQ`` the smallest): room enough to order any routes, and well in
#: the 32-bit column PostgreSQL keeps them in, so every backend takes the same routes.
MAX_SEQ = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the routes table, as a value."""

    id: int
    seq: int
    match: str
    target: str
    impulse_config: str | None = None

    def describe(self) -> str:
        """``route #3 (seq 0) 'room=*' -> support``."""
        return f"route #{self.id} (seq {self.seq}) {self.match!r} -> {self.target}"


class Verdict(StrEnum):
    """What one route made of one message."""

    MATCHED = "matched"
    NO_MATCH = "no match"
    BAD_GLOB = "bad glob"
    NO_SENDER_ID = "no sender id"
    BAD_TARGET = "bad target"
    NO_FOLDER = "no folder"


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """One route's verdict on one message, with the term results and any detail that explain it."""

    route: Route
    verdict: Verdict
    terms: tuple[TermResult, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        """One line for a human: the route, then the verdict and the reason."""
        return f"{self.route.describe()}: {self.verdict.value}: {self.reason()}"

    def reason(self) -> str:
        """Why this verdict: the terms that held, the one that failed, or the detail."""
        if self.detail:
            return self.detail
        if self.verdict is Verdict.MATCHED:
            if not self.terms:
                return "empty match, every message matches"
            return "; ".join(result.describe() for result in self.terms)
        failed = self.terms[-1]
        return failed.describe()


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The route that takes a message, its parsed (expanded) target and the impulse settings it implies."""

    route: Route
    target: Target
    impulse: ImpulseConfig
    check: RouteCheck


@dataclass(frozen=True, slots=True)
class RouteTrace:
    """Every route looked at for one message, in order, and the decision (None when no route matches)."""

    fields: MessageFields
    checks: tuple[RouteCheck, ...]
    decision: RouteDecision | None

    def lines(self) -> list[str]:
        """The explanation ``gated route test`` prints: one line per route looked at, then the outcome."""
        lines = [check.describe() for check in self.checks]
        if self.decision is None:
            lines.append("=> no route matches")
        else:
            lines.append(f"=> {self.decision.target} via route #{self.decision.route.id}")
        return lines


def ordered(routes: Iterable[Route]) -> list[Route]:
    """Routes in the order they are tried: by ``seq``, ties broken by ``id``."""
    return sorted(routes, key=lambda route: (route.seq, route.id))


def trace(
    routes: Iterable[Route],
    fields: MessageFields,
    *,
    impulse: ImpulseConfig | None = None,
    folders: Collection[str] | None = None,
) -> RouteTrace:
    """Walk the routes for ``fields`` and keep every verdict up to and including the first match.

    ``impulse`` is the configured default a route's ``impulse_config`` is merged over (the built-in one if None).
    ``folders``, the registered groups, lets a ``{sender}`` route whose folder is not among them fall through to the
    next route (verdict ``no folder``); None takes every expanded folder as it is.
    """
    checks: list[RouteCheck] = []
    for route in ordered(routes):
        check, target = _check(route, fields, folders)
        checks.append(check)
        if target is not None:
            decision = RouteDecision(route, target, _impulse(route, impulse or ImpulseConfig()), check)
            return RouteTrace(fields, tuple(checks), decision)
    return RouteTrace(fields, tuple(checks), None)


def resolve(
    routes: Iterable[Route],
    fields: MessageFields,
    *,
    impulse: ImpulseConfig | None = None,
    folders: Collection[str] | None = None,
) -> RouteDecision | None:
    """The first route, in ``(seq, id)`` order, that takes the message; None when none does (see :func:`trace`)."""
    return trace(routes, fields, impulse=impulse, folders=folders).decision


def check_route(
    match: str, target: str, impulse_config: str | None = None, *, impulse_name: str = "impulse_config"
) -> Target:
    """Refuse a route whose text could never work, with one clear line (:class:`RouteError`); return its target.

    The checks that need nothing but the route: :func:`~kanmon.router.match.check_match` (keys, ``=``, globs), the
    target grammar (:func:`~kanmon.router.targets.validate_target`) and the impulse JSON, whose errors start with
    ``impulse_name`` (:func:`~kanmon.router.impulse.parse_impulse_config`). SPEC §6.4, §7.
    """
    check_match(match)
    parsed = validate_target(target)
    parse_impulse_config(impulse_config, name=impulse_name)
    return parsed


def check_seq(seq: int, *, name: str = "seq") -> int:
    """Return ``seq`` when it is a route position (within ``±MAX_SEQ``), else raise :class:`RouteError` whose one line
    starts with ``name``."""
    if not -MAX_SEQ <= seq <= MAX_SEQ:
        raise RouteError(f"{name}: expected an integer from {-MAX_SEQ} to {MAX_SEQ}, got {seq}")
    return seq


def validate_route(
    match: str,
    target: str,
    impulse_config: str | None = None,
    *,
    folders: Collection[str],
    daemons: Collection[str],
) -> Target:
    """:func:`check_route`, then that the target names one of ``folders`` (the registered groups) or ``daemons``
    (the configured daemon names); raises :class:`RouteError` (one line). Returns the parsed target."""
    check_route(match, target, impulse_config)
    return check_target_known(target, folders=folders, daemons=daemons)


def _check(route: Route, fields: MessageFields, folders: Collection[str] | None) -> tuple[RouteCheck, Target | None]:
    expr = parse_match(route.match)
    if expr.errors:
        term, error = expr.errors[0]
        return RouteCheck(route, Verdict.BAD_GLOB, detail=f"{term.text!r} is malformed ({error.reason})"), None
    results = tuple(expr.evaluate(fields))
    if results and not results[-1].matched:
        return RouteCheck(route, Verdict.NO_MATCH, results), None
    expanded = expand_target(route.target, fields.sender)
    if expanded is None:
        detail = f"target needs {SENDER_PLACEHOLDER} but sender {fields.sender!r} gives no file-safe id"
        return RouteCheck(route, Verdict.NO_SENDER_ID, results, detail), None
    try:
        target = parse_target(expanded)
    except RouteError as exc:
        return RouteCheck(route, Verdict.BAD_TARGET, results, str(exc)), None
    templated = SENDER_PLACEHOLDER in route.target and target.kind is TargetKind.FOLDER
    if templated and folders is not None and target.name not in folders:
        detail = f"target {route.target} expands to folder {target.name}, which is not registered"
        return RouteCheck(route, Verdict.NO_FOLDER, results, detail), None
    return RouteCheck(route, Verdict.MATCHED, results), target


def _impulse(route: Route, base: ImpulseConfig) -> ImpulseConfig:
    # Routes are validated when written; a row that slipped past (hand-edited SQL) falls back to the defaults
    # rather than stopping the message.
    try:
        return parse_impulse_config(route.impulse_config, base)
    except RouteError:
        return base
