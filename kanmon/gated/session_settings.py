"""The group settings of session resets and the memory flush turn (issue 16 items 2 and 3).

Declared beside the other agent settings (:func:`kanmon.gated.group_settings.settings_options`) and checked the same
way, one clear line each (:class:`~kanmon.errors.InvalidInput`). Stored in ``container_config`` under the keys
:mod:`kanmon.gateway.session_policy` reads:

* ``--session-reset none|idle|daily|both`` → ``session_reset``;
* ``--session-idle DURATION`` → ``session_idle_expiry`` (seconds; the idle expiry SPEC §10 always had);
* ``--session-reset-hour H`` → ``session_reset_hour`` (0–23, in the group's ``--timezone``);
* ``--session-reset-notice on|off`` → ``session_reset_notice``;
* ``--session-reset-for PLATFORM=POLICY`` (repeat) → ``session_reset_platforms[PLATFORM]``, POLICY being ``none``,
  ``idle:DURATION``, ``daily:H`` or ``both:DURATION:H``; ``--unset-session-reset-for PLATFORM`` removes one;
  PLATFORM is a JID's platform part (:data:`kanmon.folders.PLATFORM_PATTERN`);
* ``--memory-flush on|off``, ``--flush-prompt TEXT``, ``--flush-timeout DURATION`` → ``memory_flush``,
  ``memory_flush_prompt``, ``memory_flush_timeout``.

An idle length is 0 (never) or from :data:`~kanmon.gateway.session_policy.MIN_IDLE` to
:data:`~kanmon.gateway.session_policy.MAX_IDLE`. A platform's policy must be able to act: ``idle:0`` (which resets
nothing) is refused for ``none``, ``both:0:H`` for ``daily:H``, so a policy read back is the one that was meant.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from kanmon.errors import InvalidInput
from kanmon.folders import is_platform
from kanmon.gated.setting_values import parse_duration
from kanmon.gateway.session_policy import MAX_IDLE, MIN_IDLE, MODES

__all__ = ["RESETTABLE_SESSION", "merge_platforms", "parse_session", "session_options"]

#: ``--reset NAME`` of these settings: the ``container_config`` key.
RESETTABLE_SESSION: Mapping[str, str] = {
    "session-reset": "session_reset",
    "session-idle": "session_idle_expiry",
    "session-reset-hour": "session_reset_hour",
    "session-reset-notice": "session_reset_notice",
    "session-reset-for": "session_reset_platforms",
    "memory-flush": "memory_flush",
    "flush-prompt": "memory_flush_prompt",
    "flush-timeout": "memory_flush_timeout",
}
_ZERO = re.compile(r"never|(?:0+(?:\.0*)?[smhd]?)+")  # an idle length of nothing: 0, 0s, 0.0, 0h0m, never
_SWITCH = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}


def session_options() -> list[Callable[[Any], Any]]:
    """The click options of the session settings."""
    return [
        click.option("--session-reset", metavar="none|idle|daily|both", help="When a session starts afresh by itself."),
        click.option("--session-idle", metavar="DURATION", help="Silence after which idle resets, like 24h."),
        click.option("--session-reset-hour", metavar="H", help="Local hour (0-23) of the daily reset.  [default: 4]"),
        click.option("--session-reset-notice", metavar="on|off", help="Tell the chat when a policy reset its session."),
        click.option(
            "--session-reset-for",
            "session_reset_for",
            metavar="PLATFORM=POLICY",
            multiple=True,
            help="Per platform: none, idle:DURATION, daily:H or both:DURATION:H (repeat).",
        ),
        click.option("--unset-session-reset-for", metavar="PLATFORM", multiple=True, help="Remove that (repeat)."),
        click.option("--memory-flush", metavar="on|off", help="Run the agent once more before a session is reset."),
        click.option("--flush-prompt", metavar="TEXT", help="What the memory flush turn asks the agent."),
        click.option("--flush-timeout", metavar="DURATION", help="Longest memory flush turn.  [default: 5m]"),
    ]


def _switch(option: str, text: str) -> bool:
    value = _SWITCH.get(text.strip().lower())
    if value is None:
        raise InvalidInput(f"{option}: expected on or off, got {text!r}")
    return value


def _duration(option: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise InvalidInput(f"{option}: expected seconds > 0, or like 90s, 30m, 24h, got {text!r}") from None


def _idle(option: str, text: str, *, never: bool = True) -> float:
    """An idle length: a duration from MIN_IDLE to MAX_IDLE, or (with ``never``) 0, also ``never``, for sessions that
    never reset for silence (SPEC §10)."""
    if never and _ZERO.fullmatch(text.strip().lower()):
        return 0.0
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = math.nan
    if not MIN_IDLE <= seconds <= MAX_IDLE:
        zero = "0 (never), or " if never else ""
        raise InvalidInput(f"{option}: expected {zero}an idle length from 1s to 365d, like 90s, 30m, 24h, got {text!r}")
    return seconds


def _hour(option: str, text: str) -> int:
    if not re.fullmatch(r"\d{1,2}", text.strip()) or int(text) > 23:
        raise InvalidInput(f"{option}: expected an hour from 0 to 23, got {text!r}")
    return int(text)


def _mode(option: str, text: str) -> str:
    if text.strip() not in MODES:
        raise InvalidInput(f"{option}: expected one of {', '.join(MODES)}, got {text!r}")
    return text.strip()


def parse_platform_policy(text: str) -> tuple[str, dict[str, Any]]:
    """``PLATFORM=POLICY`` as ``(platform, {"mode", "idle", "hour"})``; raises InvalidInput (one line) for a malformed
    one and for one that cannot act (``idle:0``: write ``none``; ``both:0:H``: write ``daily:H``)."""
    option = "--session-reset-for"
    platform, sep, spec = text.partition("=")
    platform = platform.strip()
    if not sep or not is_platform(platform):
        raise InvalidInput(f"{option} {text!r}: expected PLATFORM=POLICY, like telegram=idle:24h or web=none")
    mode, *args = spec.strip().split(":")
    expected = {"none": 0, "idle": 1, "daily": 1, "both": 2}.get(mode)
    if expected is None or len(args) != expected:
        raise InvalidInput(f"{option} {text!r}: POLICY is none, idle:DURATION, daily:H or both:DURATION:H")
    policy: dict[str, Any] = {"mode": mode}
    if mode in ("daily", "both"):
        policy["hour"] = _hour(f"{option} {platform}", args[-1])
    if mode in ("idle", "both"):
        if _ZERO.fullmatch(args[0].strip().lower()):
            instead = "none" if mode == "idle" else f"daily:{policy['hour']}"
            why = "never resets" if mode == "idle" else "never resets for idle"
            raise InvalidInput(f"{option} {text!r}: {spec.strip()} {why}: write {platform}={instead}")
        policy["idle"] = _idle(f"{option} {platform}", args[0], never=False)
    return platform, policy


def parse_session(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``container_config`` values of the scalar session options given; raises InvalidInput."""
    values: dict[str, Any] = {}
    parsers: dict[str, tuple[str, str, Callable[[str, str], Any]]] = {
        "session_reset": ("--session-reset", "session_reset", _mode),
        "session_idle": ("--session-idle", "session_idle_expiry", _idle),
        "session_reset_hour": ("--session-reset-hour", "session_reset_hour", _hour),
        "session_reset_notice": ("--session-reset-notice", "session_reset_notice", _switch),
        "memory_flush": ("--memory-flush", "memory_flush", _switch),
        "flush_timeout": ("--flush-timeout", "memory_flush_timeout", _duration),
    }
    for name, (option, key, parse) in parsers.items():
        if options.get(name) is not None:
            values[key] = parse(option, options[name])
    prompt = options.get("flush_prompt")
    if prompt is not None:
        if not prompt.strip() or "\0" in prompt:
            raise InvalidInput("--flush-prompt: expected some text (no NUL character)")
        values["memory_flush_prompt"] = prompt
    return values


def merge_platforms(current: Any, given: Sequence[str], removed: Sequence[str]) -> dict[str, Any]:
    """``session_reset_platforms`` after ``--session-reset-for`` (``given``, checked) and its ``--unset`` form."""
    platforms = {k: v for k, v in (current or {}).items() if k not in removed} if isinstance(current, dict) else {}
    platforms.update(parse_platform_policy(text) for text in given)
    return platforms
