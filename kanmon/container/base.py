"""What every runtime takes and gives: the run spec, run info, and the ``Runtime`` protocol."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kanmon.container.errors import InvalidRunSpec
from kanmon.folders import is_valid_folder

if TYPE_CHECKING:
    from kanmon.container.handle import RunHandle

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_STOP_GRACE",
    "DEFAULT_TIMEOUT",
    "HARD_TIMEOUT_MARGIN",
    "LABEL_FOLDER",
    "LABEL_INSTANCE",
    "LABEL_RUN",
    "AllowedMount",
    "Limits",
    "Mount",
    "RunInfo",
    "RunSpec",
    "Runtime",
    "folder_slug",
    "is_agent_user",
]

DEFAULT_IDLE_TIMEOUT = 30 * 60.0
DEFAULT_TIMEOUT = 60 * 60.0
HARD_TIMEOUT_MARGIN = 30.0  # the hard timeout must exceed the idle one by this much (nanoclaw #164)
DEFAULT_STOP_GRACE = 10.0

LABEL_INSTANCE = "kanmon.instance"
LABEL_RUN = "kanmon.run"
LABEL_FOLDER = "kanmon.folder"
LABEL_PREFIX = "kanmon."

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_USER = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]*))?")
GIB = 1024**3


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Resource limits of one run (the Docker runtime enforces them; the process runtime cannot)."""

    memory_bytes: int = GIB
    cpus: float = 1.0
    pids: int = 256

    def __post_init__(self) -> None:
        if self.memory_bytes < 6 * 1024 * 1024 or self.cpus <= 0 or self.pids < 1:
            raise InvalidRunSpec(f"limits out of range: {self}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    """An extra host path the agent asks for; it must fall under an :class:`AllowedMount`."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedMount:
    """An allowlist entry: host paths under ``root`` may be mounted, writable only when ``writable``."""

    root: Path
    writable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """Everything a runtime needs to start one run. Plain values: no store, no loop.

    ``image`` is for container runtimes, ``command`` is the argv (the process runtime's agent, or a container
    command overriding the image's). ``idle_timeout`` None disables the idle timer. ``stdin`` is the whole input
    document, fed at start; ``None`` leaves it to the caller's :meth:`RunHandle.feed` once the run is up. It may hold
    secrets, so runtimes never log it, put it in argv, environment or a file. ``user`` is the
    container's ``user[:group]`` (names or numbers, never root); a numeric user also owns the group folder.
    """

    run_id: str
    instance: str
    folder: str
    group_dir: Path
    image: str | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = b""
    limits: Limits = field(default_factory=Limits)
    network: str = "none"
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    stop_grace: float = DEFAULT_STOP_GRACE
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str = "1000:1000"
    mounts: tuple[Mount, ...] = ()

    def __post_init__(self) -> None:
        for name, value in (("run_id", self.run_id), ("instance", self.instance)):
            if not _ID.fullmatch(value):
                raise InvalidRunSpec(f"{name} {value!r} must be 1-63 of letters, digits, '_', '.', '-'")
        if not is_valid_folder(self.folder):
            raise InvalidRunSpec(f"invalid group folder {self.folder!r}")
        if self.image is None and not self.command:
            raise InvalidRunSpec("a run needs an image or a command")
        self._check_timeouts()
        if not is_agent_user(self.user):
            raise InvalidRunSpec(f"user {self.user!r} must be a non-root user[:group] like 1000:1000")
        reserved = [key for key in self.labels if key.startswith(LABEL_PREFIX)]
        if reserved:
            raise InvalidRunSpec(f"labels {reserved} use the reserved prefix {LABEL_PREFIX!r}")

    def _check_timeouts(self) -> None:
        if not (math.isfinite(self.timeout) and self.timeout > 0) or self.stop_grace < 0:
            raise InvalidRunSpec(f"timeout {self.timeout} and stop grace {self.stop_grace} must be positive")
        if self.idle_timeout is None:
            return
        if self.idle_timeout <= 0:
            raise InvalidRunSpec(f"idle timeout {self.idle_timeout} must be positive")
        if self.timeout < self.idle_timeout + HARD_TIMEOUT_MARGIN:
            raise InvalidRunSpec(
                f"timeout {self.timeout:g}s must be at least the idle timeout ({self.idle_timeout:g}s) "
                f"plus {HARD_TIMEOUT_MARGIN:g}s, or every idle run would end as a hard timeout"
            )

    def run_labels(self) -> dict[str, str]:
        """The labels a runtime attaches to the run: the spec's own plus kanmon's (which win)."""
        return {
            **self.labels,
            LABEL_INSTANCE: self.instance,
            LABEL_RUN: self.run_id,
            LABEL_FOLDER: self.folder,
            "kanmon.idle_timeout": "" if self.idle_timeout is None else repr(self.idle_timeout),
            "kanmon.timeout": repr(self.timeout),
            "kanmon.stop_grace": repr(self.stop_grace),
        }


def is_agent_user(user: str) -> bool:
    """Whether ``user`` may run an agent: a ``user[:group]`` of names or numbers, neither of them root (``root``,
    ``0``), and a number below 4294967295 (``(uid_t) -1`` means "unchanged" to ``chown``; above it is no id)."""
    match = _USER.fullmatch(user)
    return match is not None and all(_not_root(part) for part in match.groups() if part is not None)


def _not_root(name: str) -> bool:
    if name.isdigit():
        return 0 < int(name) < 0xFFFFFFFF
    return name != "root"


def timers_from_labels(labels: Mapping[str, str]) -> tuple[float | None, float, float]:
    """``(idle_timeout, timeout, stop_grace)`` as :meth:`RunSpec.run_labels` recorded them (defaults if absent)."""
    idle = labels.get("kanmon.idle_timeout", repr(DEFAULT_IDLE_TIMEOUT))
    return (
        float(idle) if idle else None,
        float(labels.get("kanmon.timeout", DEFAULT_TIMEOUT)),
        float(labels.get("kanmon.stop_grace", DEFAULT_STOP_GRACE)),
    )


def folder_slug(folder: str, limit: int = 40) -> str:
    """A folder as a name fragment: ``corp/eng`` → ``corp-eng``, cut to ``limit`` characters."""
    return folder.replace("/", "-")[:limit].strip("-_") or "group"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run a runtime knows about (found by label or state file), for reclaiming after a restart."""

    run_id: str
    instance: str
    folder: str
    name: str
    running: bool
    exit_code: int | None = None
    started_at: float | None = None  # seconds since the epoch
    labels: Mapping[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    """An agent runtime: start runs, and find and re-attach this instance's runs after a restart.

    Every method may raise :class:`~kanmon.container.RuntimeUnavailable` when the runtime cannot be reached (the
    Docker engine is down): nothing was done and the call may be made again later.
    """

    async def available(self) -> bool:
        """True when the runtime can start runs now (e.g. the Docker engine answers); never raises."""
        ...

    async def agent_host(self, network: str) -> str:
        """The address of this machine that an agent of this runtime on ``network`` reaches (gated's credential
        proxy listens there): loopback for local runtimes, the network's gateway for containers.

        Raises :class:`~kanmon.container.InvalidRunSpec` when no address is reachable from ``network``.
        """
        ...

    async def start(self, spec: RunSpec) -> RunHandle:
        """Start a run; its events are read from the returned handle.

        Raises :class:`~kanmon.container.InvalidRunSpec` for a spec this runtime cannot run (no image, no command,
        an unsafe mount or group folder) and :class:`~kanmon.container.ContainerError` when starting failed.
        """
        ...

    async def list_runs(self, instance: str) -> list[RunInfo]:
        """The runs (running or finished, not yet removed) of ``instance`` and of no other.

        Raises :class:`~kanmon.container.ContainerError` when they cannot be listed.
        """
        ...

    async def attach(self, instance: str, run_id: str) -> RunHandle:
        """A handle on an existing run of ``instance`` that replays its output from the start.

        Raises :class:`~kanmon.container.RunNotFound` when there is no such run (never started, or removed).
        """
        ...

    def close(self) -> None:
        """Release what the runtime holds in gated (threads, connections to its engine); idempotent, never raises.

        Runs keep running (gated reclaims them when it starts again); a closed runtime is not used again.
        """
        ...
