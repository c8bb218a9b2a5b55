"""``gated group show``: a group's effective agent settings, its own and gated's defaults, never a secret's value.

Secrets are shown by name only: their values are not in the store at all, and ``show`` does not read them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from kanmon.folders import family_parent
from kanmon.gated.config_kinds import format_size
from kanmon.gated.group_settings import format_duration
from kanmon.gated.settings import Settings
from kanmon.store import Group

__all__ = ["describe_group", "render_group"]

_LABELS = {
    "runtime": "runtime",
    "image": "image",
    "command": "command",
    "env": "env",
    "secrets": "secrets",
    "upstreams": "upstreams",
    "network": "network",
    "mounts": "mounts",
    "memory_bytes": "memory",
    "cpus": "cpus",
    "pids": "pids",
    "timeout": "timeout",
    "idle_timeout": "idle timeout",
    "user": "user",
    "daily_budget": "daily budget",
    "timezone": "time zone",
    "session_reset": "session reset",
    "session_idle_expiry": "session idle",
    "session_reset_hour": "session reset hour",
    "session_reset_notice": "session reset notice",
    "session_reset_platforms": "session reset for",
    "memory_flush": "flush before reset",
    "memory_flush_prompt": "flush prompt",
    "memory_flush_timeout": "flush timeout",
}


def describe_group(group: Group, settings: Settings, *, web_tokens: int) -> dict[str, Any]:
    """The group as ``group show --json`` prints it: ``settings`` holds every effective value, ``defaults`` names
    those that come from gated's configuration rather than the group; ``web_tokens`` is how many it has."""
    config = group.container_config
    docker = settings.runtime.docker
    defaults: dict[str, Any] = {
        "runtime": settings.runtime.default,
        "image": docker.image,
        "command": None,  # the image's own (docker); a process group needs one
        "network": docker.network,
        "memory_bytes": docker.memory_bytes,
        "cpus": docker.cpus,
        "pids": docker.pids_limit,
        "timeout": settings.runtime.timeout,
        "idle_timeout": settings.runtime.idle_timeout,
        "user": docker.user,
        "daily_budget": None,  # no budget
        "timezone": settings.scheduler.timezone,
        "session_reset": settings.gateway.session_reset,
        "session_idle_expiry": settings.gateway.session_idle_expiry,
        "session_reset_hour": settings.gateway.session_reset_hour,
        "session_reset_notice": False,
        "session_reset_platforms": {},
        "memory_flush": False,
        "memory_flush_prompt": settings.gateway.session_flush_prompt,
        "memory_flush_timeout": settings.gateway.session_flush_timeout,
    }
    values = {key: config.get(key, default) for key, default in defaults.items()}
    values["env"] = dict(config.get("env") or {})
    values["secrets"] = [str(name) for name in config.get("secrets") or []]  # names: the values are never here
    values["upstreams"] = [str(name) for name in config.get("upstreams") or []]  # through the credential proxy
    values["mounts"] = [
        {"host": m.get("source"), "container": m.get("target"), "mode": "ro" if m.get("read_only", True) else "rw"}
        for m in config.get("mounts") or []
        if isinstance(m, dict)
    ]
    return {
        "folder": group.folder,
        "name": group.name,
        "parent": family_parent(group.folder, group.parent),  # the setting, else the folder path's (as runs see it)
        "web_chat": web_tokens > 0,
        "settings": {key: values[key] for key in _LABELS},
        "defaults": [key for key in defaults if key not in config],
    }


def render_group(view: dict[str, Any], settings: Settings) -> list[str]:
    """The lines of ``group show``: one per setting, ``(default)`` after those the group does not set."""
    rows: list[tuple[str, str]] = [
        ("folder", view["folder"]),
        ("name", view["name"]),
        ("parent", view["parent"] or "-"),
        ("web chat", "yes" if view["web_chat"] else "no"),
    ]
    values = view["settings"]
    for key, label in _LABELS.items():
        try:
            lines = _shown(key, values[key], settings) or ["-"]
        except (ValueError, TypeError, KeyError, AttributeError):  # written by hand into the store, not by gated
            lines = [f"{values[key]!r}  (not a valid {label}: its runs fail to start)"]
        if key in view["defaults"]:
            lines[0] += "  (default)"
        rows += [(label if n == 0 else "", line) for n, line in enumerate(lines)]
    width = max(len(label) for label, _ in rows) + 2
    return [f"{label.ljust(width)}{text}".rstrip() for label, text in rows]


def _shown(key: str, value: Any, settings: Settings) -> list[str]:
    if value is None or value in ([], {}):
        return ["the image's own" if key == "command" else "-"]
    if key == "command":
        return [shlex.join(map(str, value))]  # as --command takes it back (a newcomer lost the quotes)
    if key == "env":
        return [f"{name}={text}" for name, text in value.items()]
    if key == "secrets":
        missing = "  (not in the secrets: section of kanmon.yaml: its runs fail)"
        return [name if name in settings.secrets else name + missing for name in value]
    if key == "mounts":
        return [f"{m['host']} -> {m['container']} ({m['mode']})" for m in value]
    if key == "memory_bytes":
        return [format_size(int(value))]
    if key in _SHOWN:
        return _SHOWN[key](value)
    if key in ("timeout", "idle_timeout", "memory_flush_timeout"):
        return [format_duration(float(value))]
    if key == "cpus":
        return [f"{float(value):g}"]
    return [str(value)]


def _switch(value: Any) -> list[str]:
    return ["on" if value else "off"]


def _idle(value: Any) -> list[str]:
    return [format_duration(float(value)) if value else "never"]


def _platforms(value: Any) -> list[str]:
    return [f"{name}: {_platform_policy(policy)}" for name, policy in value.items()]


_SHOWN: dict[str, Callable[[Any], list[str]]] = {
    "daily_budget": lambda value: [f"${float(value):.2f} a day"],
    "session_reset_notice": _switch,
    "memory_flush": _switch,
    "session_idle_expiry": _idle,
    "session_reset_platforms": _platforms,
}


def _platform_policy(policy: dict[str, Any]) -> str:
    mode = str(policy["mode"])
    idle = f" after {format_duration(float(policy['idle']))}" if "idle" in policy else ""
    hour = f" at {int(policy['hour']):02d}:00" if "hour" in policy else ""
    return f"{mode}{idle}{hour}"
