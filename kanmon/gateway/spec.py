"""From a registered group and the daemon's defaults to the :class:`RunSpec` a runtime starts (SPEC §9).

A group's ``container_config`` (JSON, set by ``gated group add`` and ``gated group set``, validated there by
:mod:`kanmon.gated.group_settings`) may override, per group: ``runtime``, ``image``, ``command`` (argv list), ``env``
(mapping), ``network``, ``idle_timeout``, ``timeout``, ``memory_bytes``, ``cpus``, ``pids``, ``user`` (the Docker
``user[:group]``, never root; a numeric one owns the group folder) and ``mounts`` (``[{"source", "target",
"read_only"}]``, checked against ``runtime.mount_allowlist`` by the runtime); ``secrets`` lists the names of the
secrets its agent receives on stdin (:func:`run_secrets`). It is read afresh for every run, so a change applies from
the group's next run. Anything malformed raises :class:`~kanmon.container.InvalidRunSpec`, and the run fails without
output (retried, then dead-lettered with the reason in the log) rather than running with a guessed value.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from kanmon.container import InvalidRunSpec, Limits, Mount, RunSpec
from kanmon.container.agent_secrets import SecretSource, read_secrets
from kanmon.gateway.privacy import Privacy
from kanmon.gateway.session_policy import DEFAULT_FLUSH_PROMPT
from kanmon.store import Group

__all__ = ["RunDefaults", "build_spec", "new_run_id", "run_secrets", "runtime_name", "secret_names"]

N = TypeVar("N", int, float)

# The process runtime gives the agent only the environment the spec names: enough to find programs and speak UTF-8.
_PROCESS_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True, kw_only=True)
class RunDefaults:
    """What every run gets unless its group says otherwise: plain values, filled in by gated from the settings."""

    instance: str
    data_dir: Path
    runtime: str = "docker"
    image: str = "kanmon-agent:latest"
    command: tuple[str, ...] = ()
    network: str = "none"
    limits: Limits = field(default_factory=Limits)
    user: str = "1000:1000"
    idle_timeout: float = 30 * 60.0
    timeout: float = 60 * 60.0
    stop_grace: float = 10.0
    assistant_name: str = "kanmon"
    batch_limit: int = 100
    session_idle_expiry: float = 0.0
    #: Session reset policy defaults (issue 16, :mod:`kanmon.gateway.session_policy`); ``idle`` with no idle expiry
    #: resets nothing.
    session_reset: Literal["none", "idle", "daily", "both"] = "idle"
    session_reset_hour: int = 4
    flush_prompt: str = DEFAULT_FLUSH_PROMPT
    flush_timeout: float = 300.0
    max_replies: int = 500  # replies of one run, after which it is stopped (runtime.max_replies)
    reply_flush: float = 0.05  # seconds a reply may wait to be stored with the next ones
    #: Seconds a run's first reply may wait, to share the run's last transaction if the run ends meanwhile
    #: (:mod:`kanmon.gateway.recorder`).
    reply_first_flush: float = 0.005
    #: The zone a group's days are counted in (usage, daily budget) unless it names its own (``scheduler.timezone``).
    timezone: str = "UTC"
    #: Where each configured secret's value is read (the ``secrets:`` section); a group receives those it names.
    secrets: Mapping[str, SecretSource] = field(default_factory=dict)
    #: The environment ``env:`` secrets are read from: gated's own (``os.environ``) when None.
    environ: Mapping[str, str] | None = field(default=None, repr=False)
    #: Whose ids agents see as pseudonyms (``privacy.*``; issue 16 item 5); None: nobody's.
    privacy: Privacy | None = field(default=None, repr=False)


def new_run_id(now: float) -> str:
    """A run id that sorts by start time and is unique without coordination: ``YYYYmmddHHMMSS-<8 hex>``."""
    return f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(now))}-{secrets.token_hex(4)}"


def runtime_name(group: Group, defaults: RunDefaults) -> str:
    """The runtime that runs ``group``'s agent."""
    return str(group.container_config.get("runtime") or defaults.runtime)


def build_spec(group: Group, defaults: RunDefaults, *, run_id: str, stdin: bytes | None = None) -> RunSpec:
    """The spec of one run of ``group`` (``stdin`` None: the caller feeds the input once the run is up)."""
    config = group.container_config
    runtime = runtime_name(group, defaults)
    env = _env(config.get("env", {}), process=runtime == "process")
    limits = Limits(
        memory_bytes=_number(config, "memory_bytes", defaults.limits.memory_bytes, int),
        cpus=_number(config, "cpus", defaults.limits.cpus, float),
        pids=_number(config, "pids", defaults.limits.pids, int),
    )
    return RunSpec(
        run_id=run_id,
        instance=defaults.instance,
        folder=group.folder,
        group_dir=defaults.data_dir / "groups" / group.folder,
        image=str(config.get("image") or defaults.image) if runtime != "process" else None,
        command=_command(config.get("command"), defaults.command),
        env=env,
        stdin=stdin,
        limits=limits,
        network=str(config.get("network") or defaults.network),
        idle_timeout=_number(config, "idle_timeout", defaults.idle_timeout, float),
        timeout=_number(config, "timeout", defaults.timeout, float),
        stop_grace=defaults.stop_grace,
        user=_user(config.get("user"), defaults.user),
        mounts=_mounts(config.get("mounts")),
    )


def secret_names(group: Group) -> tuple[str, ...]:
    """The names of the secrets ``group``'s agent receives (its ``container_config.secrets``)."""
    value = group.container_config.get("secrets")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise InvalidRunSpec("container_config.secrets must be a list of secret names")
    return tuple(value)


async def run_secrets(group: Group, defaults: RunDefaults) -> dict[str, str]:
    """The values of ``group``'s secrets, read now (a rotated file counts from the next run), files off the loop.

    Raises :class:`~kanmon.container.agent_secrets.MissingSecret` (an :class:`InvalidRunSpec`) naming the secret.
    """
    names = secret_names(group)
    if not names:
        return {}
    return await asyncio.to_thread(read_secrets, names, defaults.secrets, defaults.environ)


def _command(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(part, str) and part for part in value):
        raise InvalidRunSpec(f"container_config.command must be a list of non-empty strings, not {value!r}")
    return tuple(value)


def _mounts(value: Any) -> tuple[Mount, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRunSpec(f"container_config.mounts must be a list, not {value!r}")
    mounts = []
    for item in value:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("source"), str)
            and isinstance(item.get("target"), str)
            and isinstance(item.get("read_only", True), bool)
        ):
            raise InvalidRunSpec(f"container_config.mounts: {item!r} is not {{source, target, read_only}}")
        mounts.append(Mount(source=Path(item["source"]), target=item["target"], read_only=item.get("read_only", True)))
    return tuple(mounts)


def _user(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidRunSpec(f"container_config.user must be a string like 1000:1000, not {value!r}")
    return value  # RunSpec refuses root and malformed users


def _env(value: Any, *, process: bool) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRunSpec("container_config.env must map names to strings")
    base = {name: os.environ[name] for name in _PROCESS_BASE_ENV if process and name in os.environ}
    if process:
        base["PATH"] = _with_own_scripts(base.get("PATH", ""))
    return {**base, **value}


def _with_own_scripts(path: str) -> str:
    """``path`` with the scripts directory of gated's own installation last, when it is not on it: an agent
    ``gated agent echo`` (README) then runs the ``gated`` of this installation, even when gated was started as
    ``.venv/bin/gated`` without the virtualenv activated. Programs already on ``path`` come first, as before."""
    scripts = sysconfig.get_path("scripts")
    parts = [part for part in path.split(os.pathsep) if part]
    return os.pathsep.join(parts if scripts in parts else [*parts, scripts])


def _number(config: Mapping[str, Any], key: str, default: N, kind: type[N]) -> N:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRunSpec(f"container_config.{key} must be a number, not {value!r}")
    return kind(value)
