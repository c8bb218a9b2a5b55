"""A group's agent settings as ``gated group add`` and ``gated group set`` take them: one option declaration for
both, each value checked with one clear line (:class:`~kanmon.errors.InvalidInput`, exit 2), then merged into the
group's ``container_config`` (read by :func:`kanmon.gateway.spec.build_spec` at each run's start).

Parsing happens before the store is touched (:func:`parse_change`); merging (:meth:`Change.apply`) runs inside the
store's update transaction, so a refused change leaves the group exactly as it was. What a change cannot know alone
(whether a timeout leaves room for the idle timeout, whether a process group asks for mounts) is checked against the
group's resulting settings and gated's defaults.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from kanmon.container.agent_secrets import is_env_name
from kanmon.container.base import HARD_TIMEOUT_MARGIN, AllowedMount, Mount, is_agent_user
from kanmon.container.mounts import bind_mount, check_target
from kanmon.container.process import PROCESS_MOUNTS
from kanmon.errors import InvalidInput
from kanmon.gated.budget_settings import budget_options, parse_budget
from kanmon.gated.session_settings import (
    RESETTABLE_SESSION,
    merge_platforms,
    parse_platform_policy,
    parse_session,
    session_options,
)
from kanmon.gated.setting_values import format_duration, parse_duration, parse_memory
from kanmon.gated.settings import Settings

__all__ = [
    "RESETTABLE",
    "Change",
    "format_duration",
    "parse_change",
    "parse_duration",
    "parse_env_pair",
    "parse_memory",
    "parse_mount",
    "settings_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: ``--reset NAME``: the setting's ``container_config`` key (back to gated's default, or to none).
RESETTABLE: Mapping[str, str] = {
    "runtime": "runtime",
    "image": "image",
    "command": "command",
    "network": "network",
    "memory": "memory_bytes",
    "cpus": "cpus",
    "pids": "pids",
    "timeout": "timeout",
    "idle-timeout": "idle_timeout",
    "user": "user",
    "env": "env",
    "secrets": "secrets",
    "mounts": "mounts",
    "upstreams": "upstreams",
    "daily-budget": "daily_budget",
    "timezone": "timezone",
    **RESETTABLE_SESSION,
}
# Docker's image reference grammar: [host[:port]/]path[:tag][@digest]
_NAME_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::\d+)?/)?{_NAME_PART}(?:/{_NAME_PART})*(?::\w[\w.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REFUSED_NETWORKS = {"host": "shares the host's network (gated's own ports included)", "default": "is ambiguous"}
# words of an environment variable name that say it holds a credential (the last word "key" too: API_KEY, SSH_KEY)
_CREDENTIAL_WORDS = frozenset(
    {"token", "tokens", "secret", "secrets", "password", "passwd", "passphrase", "pwd", "credential", "credentials",
     "apikey", "auth"}
)  # fmt: skip


def settings_options(command: F) -> F:
    """Declare the agent-setting options on a click command (``group add`` and ``group set`` share them).

    Every value arrives as text and is checked by :func:`parse_change`, so a bad one is one line, never click's usage
    block.
    """
    options = [
        click.option("--runtime", metavar="docker|process", help="Agent runtime.  [default: runtime.default]"),
        click.option("--image", metavar="IMAGE", help="Container image (docker).  [default: runtime.docker.image]"),
        click.option("--command", metavar="CMD", help="Agent command line, split like a shell would (no shell)."),
        click.option("--env", "env", metavar="KEY=VALUE", multiple=True, help="Set an environment variable (repeat)."),
        click.option("--unset-env", metavar="KEY", multiple=True, help="Remove an environment variable (repeat)."),
        click.option(
            "--secret", "secrets", metavar="NAME", multiple=True, help="Give the agent this secret on stdin (repeat)."
        ),
        click.option("--unset-secret", metavar="NAME", multiple=True, help="Stop giving this secret (repeat)."),
        click.option(
            "--upstream", "upstreams", metavar="NAME", multiple=True, help="Reach this API via the proxy (repeat)."
        ),
        click.option("--unset-upstream", metavar="NAME", multiple=True, help="Stop reaching it (repeat)."),
        click.option(
            "--network", metavar="none|bridge|NAME", help="Docker network.  [default: runtime.docker.network]"
        ),
        click.option(
            "--mount",
            "mounts",
            metavar="HOST:CONTAINER[:ro|rw]",
            multiple=True,
            help="Bind-mount HOST (under runtime.mount_allowlist; read-only unless rw) at CONTAINER (repeat).",
        ),
        click.option(
            "--unset-mount", metavar="CONTAINER", multiple=True, help="Remove the mount at CONTAINER (repeat)."
        ),
        click.option("--memory", metavar="SIZE", help="Memory limit, e.g. 512m or 2g."),
        click.option("--cpus", metavar="N", help="CPU limit, e.g. 0.5 or 2."),
        click.option("--pids", metavar="N", help="Most processes in the container."),
        click.option("--timeout", metavar="DURATION", help="Hard limit on a run: seconds, or 90s, 30m, 2h, 1h30m."),
        click.option("--idle-timeout", metavar="DURATION", help="Longest silence (heartbeats count) before a stop."),
        click.option("--user", metavar="UID[:GID]", help="User the container runs as (never root)."),
        click.option(
            "--reset", metavar="SETTING", multiple=True, help=f"Back to the default: {', '.join(RESETTABLE)} (repeat)."
        ),
    ]
    options[-1:-1] = budget_options() + session_options()  # before --reset
    for option in reversed(options):
        command = option(command)
    return command


# --- parsers ---------------------------------------------------------------------------------------------------


def parse_env_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may be empty, and hold ``=``); raises :class:`InvalidInput`."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(f"--env {text!r}: expected KEY=VALUE")
    check_env_name(key, "--env")
    if "\0" in value:
        raise InvalidInput(f"--env {key}: the value holds a NUL character")
    return key, value


def check_env_name(key: str, option: str) -> str:
    """``key`` when it is a POSIX variable name that does not look like a credential's; raises InvalidInput."""
    if not is_env_name(key):
        raise InvalidInput(f"{option} {key!r}: not a variable name (letters, digits and _, not starting with a digit)")
    words = [word for word in re.split(r"[_]+", key.lower()) if word]
    if option == "--env" and (_CREDENTIAL_WORDS.intersection(words) or (words and words[-1] == "key")):
        raise InvalidInput(
            f"--env {key}: looks like a credential, and the environment is no place for one: name its source in the "
            f"secrets: section of kanmon.yaml and give the group --secret {key} (it then reaches the agent on stdin)"
        )
    return key


def parse_mount(text: str) -> Mount:
    """``HOST:CONTAINER[:ro|rw]`` (read-only unless ``rw``); both paths absolute. Raises InvalidInput.

    No file-system check here: see :func:`kanmon.container.mounts.bind_mount`.
    """
    parts = text.split(":")
    mode = parts.pop() if len(parts) == 3 else "ro"
    if len(parts) != 2 or mode not in ("ro", "rw") or not all(parts):
        raise InvalidInput(f"--mount {text!r}: expected HOST:CONTAINER or HOST:CONTAINER:ro|rw")
    host, target = parts
    if not host.startswith("/"):
        raise InvalidInput(f"--mount {text!r}: the host path must be absolute")
    try:
        target = check_target(target)
    except InvalidInput as exc:
        raise InvalidInput(f"--mount {text!r}: {exc}") from None
    return Mount(source=Path(posixpath.normpath(host)), target=target, read_only=mode == "ro")


def _checked(option: str, text: str | None, parse: Callable[[str], Any], expect: str) -> Any:
    if text is None:
        return None
    try:
        return parse(text)
    except (ValueError, TypeError):
        raise InvalidInput(f"{option}: expected {expect}, got {text!r}") from None


def _image(text: str) -> str:
    if not _IMAGE.fullmatch(text.strip()):
        raise ValueError(text)
    return text.strip()


def _network(text: str) -> str:
    name = text.strip()
    if name in _REFUSED_NETWORKS:
        raise InvalidInput(f"--network {name}: refused, it {_REFUSED_NETWORKS[name]}; use none, bridge or a network")
    if not _NETWORK.fullmatch(name):
        raise ValueError(text)
    return name


def _command(text: str) -> list[str]:
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"--command: {exc}") from None
    if not argv:
        raise InvalidInput("--command: empty command")
    return argv


def _cpus(text: str) -> float:
    cpus = float(text)
    if not (math.isfinite(cpus) and cpus >= 0.01):
        raise ValueError(text)
    return cpus


def _pids(text: str) -> int:
    pids = int(text.strip(), 10)
    if pids < 1:
        raise ValueError(text)
    return pids


def _user(text: str) -> str:
    if not is_agent_user(text.strip()):
        raise ValueError(text)
    return text.strip()


def _runtime(text: str) -> str:
    if text.strip() not in ("docker", "process"):
        raise ValueError(text)
    return text.strip()


# --- the change ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Change:
    """A checked change to a group's settings: values to set, keys and entries to remove."""

    values: dict[str, Any] = field(default_factory=dict)  # container_config key -> new value
    reset: tuple[str, ...] = ()  # container_config keys back to their defaults
    env: dict[str, str] = field(default_factory=dict)
    unset_env: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    unset_secrets: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    unset_mounts: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    unset_upstreams: tuple[str, ...] = ()
    platform_resets: tuple[str, ...] = ()  # --session-reset-for PLATFORM=POLICY, checked
    unset_platform_resets: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the change changes nothing."""
        return not any(
            (self.values, self.reset, self.env, self.unset_env, self.secrets, self.unset_secrets, self.mounts,
             self.unset_mounts, self.upstreams, self.unset_upstreams, self.platform_resets,
             self.unset_platform_resets)
        )  # fmt: skip

    def apply(self, current: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
        """``current`` (a ``container_config``) with this change made; raises InvalidInput for a result that cannot
        run (mounts on the process runtime, a timeout without room for the idle timeout)."""
        config = {key: value for key, value in current.items() if key not in self.reset}
        config.update(self.values)
        env = {k: v for k, v in _mapping(config.get("env")).items() if k not in self.unset_env} | self.env
        secrets = _merged(config.get("secrets"), self.secrets, self.unset_secrets)
        upstreams = _merged(config.get("upstreams"), self.upstreams, self.unset_upstreams)
        targets = {m.target for m in self.mounts} | {posixpath.normpath(t) for t in self.unset_mounts}
        mounts = [m for m in _list(config.get("mounts")) if isinstance(m, dict) and m.get("target") not in targets]
        mounts += [{"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in self.mounts]
        platforms = merge_platforms(
            config.get("session_reset_platforms"), self.platform_resets, self.unset_platform_resets
        )
        for key, value in (("env", env), ("secrets", secrets), ("mounts", mounts), ("upstreams", upstreams),
                           ("session_reset_platforms", platforms)):  # fmt: skip
            if value:
                config[key] = value
            else:
                config.pop(key, None)
        if mounts and (config.get("runtime") or settings.runtime.default) == "process":
            given = "--mount" if self.mounts else "the group's mounts (--reset mounts removes them)"
            raise InvalidInput(f"{given}: {PROCESS_MOUNTS}")
        if (config.get("runtime") or settings.runtime.default) == "process" and not config.get("command"):
            raise InvalidInput('the process runtime runs a command: give --command (e.g. --command "gated agent echo")')
        docker = (config.get("runtime") or settings.runtime.default) == "docker"
        if upstreams and docker and config.get("network", settings.runtime.docker.network) in ("none", "host"):
            raise InvalidInput("--upstream: the agent reaches gated's credential proxy over a network: give --network")
        if {"timeout", "idle_timeout"} & (set(self.values) | set(self.reset)):
            _check_timeouts(config, settings)
        return config


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _merged(current: Any, added: Sequence[str], removed: Sequence[str]) -> list[str]:
    names = [name for name in _list(current) if name not in removed]
    return names + [name for name in added if name not in names]


def _check_timeouts(config: Mapping[str, Any], settings: Settings) -> None:
    idle = config.get("idle_timeout", settings.runtime.idle_timeout)
    hard = config.get("timeout", settings.runtime.timeout)
    if not all(isinstance(value, int | float) for value in (idle, hard)):
        return  # written by hand, not by this command: the run reports it (kanmon.gateway.spec)
    if hard < idle + HARD_TIMEOUT_MARGIN:
        raise InvalidInput(
            f"--timeout: {format_duration(hard)} must be at least the idle timeout ({format_duration(idle)}) plus "
            f"{HARD_TIMEOUT_MARGIN:g}s, or every idle run would end as a hard timeout"
        )


def parse_change(options: Mapping[str, Any], settings: Settings) -> Change:
    """Check every option of :func:`settings_options` (file-system checks of mounts included); raises InvalidInput."""
    parsed: dict[str, Any] = {
        "runtime": _checked("--runtime", options.get("runtime"), _runtime, "docker or process"),
        "image": _checked("--image", options.get("image"), _image, "an image reference like kanmon-agent:latest"),
        "command": None if options.get("command") is None else _command(options["command"]),
        "network": _checked("--network", options.get("network"), _network, "none, bridge or a network name"),
        "memory_bytes": _checked("--memory", options.get("memory"), parse_memory, "a size like 512m or 2g, >= 6m"),
        "cpus": _checked("--cpus", options.get("cpus"), _cpus, "a number of CPUs >= 0.01, like 0.5 or 2"),
        "pids": _checked("--pids", options.get("pids"), _pids, "an integer >= 1"),
        "timeout": _checked("--timeout", options.get("timeout"), parse_duration, "seconds > 0, or like 90s, 30m, 2h"),
        "idle_timeout": _checked(
            "--idle-timeout", options.get("idle_timeout"), parse_duration, "seconds > 0, or like 90s, 30m, 2h"
        ),
        "user": _checked("--user", options.get("user"), _user, "a non-root user[:group] like 1000:1000"),
        **parse_budget(options),
        **parse_session(options),
    }
    reset = []
    for name in options.get("reset", ()):
        if name not in RESETTABLE:
            raise InvalidInput(f"--reset {name!r}: expected one of {', '.join(RESETTABLE)}")
        reset.append(RESETTABLE[name])
    unset_mounts = tuple(options.get("unset_mount", ()))
    for target in unset_mounts:
        if not target.startswith("/"):
            raise InvalidInput(f"--unset-mount {target!r}: expected the mount's absolute container path")
    return Change(
        values={key: value for key, value in parsed.items() if value is not None},
        reset=tuple(reset),
        env=dict(parse_env_pair(pair) for pair in options.get("env", ())),
        unset_env=tuple(check_env_name(key, "--unset-env") for key in options.get("unset_env", ())),
        secrets=tuple(dict.fromkeys(_secret(name, settings) for name in options.get("secrets", ()))),
        unset_secrets=tuple(options.get("unset_secret", ())),
        mounts=_mounts(options.get("mounts", ()), settings.runtime.mount_allowlist),
        unset_mounts=unset_mounts,
        upstreams=tuple(dict.fromkeys(_upstream(name, settings) for name in options.get("upstreams", ()))),
        unset_upstreams=tuple(options.get("unset_upstream", ())),
        platform_resets=tuple(t for t in options.get("session_reset_for", ()) if parse_platform_policy(t)),
        unset_platform_resets=tuple(options.get("unset_session_reset_for", ())),
    )


def _upstream(name: str, settings: Settings) -> str:
    if name not in settings.credential_proxy.upstreams:
        known = ", ".join(sorted(settings.credential_proxy.upstreams)) or "none is configured"
        raise InvalidInput(f"--upstream {name}: not in credential_proxy.upstreams of kanmon.yaml ({known})")
    return name


def _secret(name: str, settings: Settings) -> str:
    if name not in settings.secrets:
        known = ", ".join(sorted(settings.secrets)) or "none is configured"
        raise InvalidInput(f"--secret {name}: not in the secrets: section of kanmon.yaml ({known})")
    return name


def _mounts(specs: Sequence[str], allowlist: Sequence[AllowedMount]) -> tuple[Mount, ...]:
    mounts: dict[str, Mount] = {}
    for spec in specs:
        mount = parse_mount(spec)
        try:
            bind_mount(mount, allowlist, strict=True)
        except InvalidInput as exc:
            raise InvalidInput(f"--mount {spec}: {exc}") from None
        mounts[mount.target] = mount  # the last one given for a container path wins
    return tuple(mounts.values())
