"""Impulse-gate settings (SPEC §7) and the per-route ``impulse_config`` JSON that overrides them.

It lives in the router because a route's ``impulse_config`` is validated when the route is written; the gate in
``kanmon.gateway.gate`` imports it from here (the router never imports the gateway).

The JSON is an object with only these keys, all optional, merged over the defaults:
``{"threshold": int >= 0, "weights": {verb: int >= 0}, "max_hold_ms": int > 0}``. Weights merge verb by verb, so
the zero weights of ``react``/``typing``/… stay unless the route names them. A threshold of 0 fires on every event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kanmon.router.errors import RouteError

__all__ = ["DEFAULT_WEIGHT", "MAX_HOLD_MS", "ZERO_WEIGHT_VERBS", "ImpulseConfig", "parse_impulse_config"]

DEFAULT_WEIGHT = 100
DEFAULT_THRESHOLD = 100
DEFAULT_MAX_HOLD_MS = 5 * 60 * 1000
ZERO_WEIGHT_VERBS = ("react", "typing", "join", "edit", "delete")

_KEYS = frozenset({"threshold", "weights", "max_hold_ms"})
#: The longest hold taken: a week. Past it a held chat's deadline is no date (``gated status`` failed on one).
MAX_HOLD_MS = 7 * 24 * 3600 * 1000


def _default_weights() -> tuple[tuple[str, int], ...]:
    return tuple((verb, 0) for verb in sorted(ZERO_WEIGHT_VERBS))


@dataclass(frozen=True, slots=True)
class ImpulseConfig:
    """How much each verb weighs, the weight that fires a chat, and how long a chat may be held at most."""

    threshold: int = DEFAULT_THRESHOLD
    # Sorted (verb, weight) pairs rather than a dict, so the config stays hashable and immutable.
    weights: tuple[tuple[str, int], ...] = field(default_factory=_default_weights)
    max_hold_ms: int = DEFAULT_MAX_HOLD_MS

    def weight(self, verb: str) -> int:
        """The weight of ``verb``; an empty verb is ``message``; unlisted verbs weigh 100."""
        return dict(self.weights).get(verb or "message", DEFAULT_WEIGHT)

    @property
    def max_hold_seconds(self) -> float:
        """``max_hold_ms`` in seconds, the unit of the gate's clock."""
        return self.max_hold_ms / 1000

    def merged(self, override: Mapping[str, Any] | None, *, name: str = "impulse_config") -> ImpulseConfig:
        """A new config with ``override`` (the decoded per-route JSON) merged over this one; validates it.

        Raises :class:`RouteError` naming the override ``name`` (what the operator wrote it as) for a bad one."""
        if not override:
            return self
        _check_override(override, name)
        weights = dict(self.weights)
        weights.update(override.get("weights", {}))
        return ImpulseConfig(
            threshold=override.get("threshold", self.threshold),
            weights=tuple(sorted(weights.items())),
            max_hold_ms=override.get("max_hold_ms", self.max_hold_ms),
        )


def parse_impulse_config(
    text: str | None, base: ImpulseConfig | None = None, *, name: str = "impulse_config"
) -> ImpulseConfig:
    """Decode a route's ``impulse_config`` (empty means no override) over ``base``.

    Raises :class:`RouteError`, one line starting with ``name``: the column's name by default, what the operator typed
    where there is one (``gated route add`` passes ``--impulse '…'``). SPEC §7.
    """
    base = base if base is not None else ImpulseConfig()
    if text is None or not text.strip():
        return base
    try:
        decoded = json.loads(text)
    except ValueError as exc:
        raise RouteError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise RouteError(f"{name} must be a JSON object, not {type(decoded).__name__}")
    return base.merged(decoded, name=name)


def _check_override(override: Mapping[str, Any], name: str) -> None:
    unknown = sorted(set(override) - _KEYS)
    if unknown:
        raise RouteError(f"{name}: unknown key(s) {', '.join(unknown)} (allowed: max_hold_ms, threshold, weights)")
    if "threshold" in override:
        _check_int(name, "threshold", override["threshold"], minimum=0)
    if "max_hold_ms" in override:
        _check_int(name, "max_hold_ms", override["max_hold_ms"], minimum=1, maximum=MAX_HOLD_MS)
    if "weights" in override:
        weights = override["weights"]
        if not isinstance(weights, dict):
            raise RouteError(f"{name}: weights must be an object of verb to integer, not {weights!r}")
        for verb, weight in weights.items():
            if not isinstance(verb, str) or not verb:
                raise RouteError(f"{name}: weights has an empty verb {verb!r}")
            _check_int(name, f"weights.{verb}", weight, minimum=0)


def _check_int(name: str, key: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    # bool is an int in Python, but `true` is not a number anyone means in this JSON.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise RouteError(f"{name}: {key} must be an integer {bounds}, not {json.dumps(value, default=repr)[:40]}")
