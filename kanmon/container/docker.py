"""DockerRuntime: one container per run, through the Docker SDK (never the CLI, never a shell).

Every blocking SDK call goes through :meth:`DockerRuntime._call`, which runs it on a thread and translates
``docker.errors`` into kanmon's (the only module that imports ``docker``). Calls that are safe to repeat are
retried with tenacity while the engine is unreachable.

A run is created with the low-level API (``containers.run`` would try to pull a missing image), attached
before it starts so no output is missed, fed its input document on stdin followed by EOF, and read as a
multiplexed stream. The container is not auto-removed: a gateway restarted after a run finished must still
be able to read its logs; the handle removes it once its ``Exited`` event has been consumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from kanmon.container.base import (
    LABEL_INSTANCE,
    LABEL_RUN,
    AllowedMount,
    RunInfo,
    RunSpec,
    folder_slug,
)
from kanmon.container.docker_handle import DockerRunHandle, close_attach_stream
from kanmon.container.errors import (
    ContainerError,
    ImageNotFound,
    InvalidRunSpec,
    RunNotFound,
    RuntimeUnavailable,
    UnsafeMount,
)
from kanmon.container.mounts import (
    AGENT_HOME,
    BoundMount,
    Identity,
    agent_owner,
    directory_identity,
    mounted_identity,
    prepare_group_dir,
    resolve_mounts,
)
from kanmon.container.networks import missing_network
from kanmon.container.protocol import OUTPUT_LIMIT, REASONING_TAGS, reasoning_tag_names

__all__ = ["DockerRunHandle", "DockerRuntime"]  # DockerRunHandle lives in kanmon.container.docker_handle

logger = logging.getLogger(__name__)

T = TypeVar("T")
_EXIT_STATUS = re.compile(r"Exited \((-?\d+)\)")
_TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}  # noqa: S108 - the container's own /tmp, not the host's


def _sdk() -> Any:
    """The Docker SDK, imported on first use: a gated of process groups never loads it (several MiB; issue 13)."""
    import docker
    import docker.errors
    import docker.utils.socket

    return docker


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn the Docker SDK's errors into kanmon's, most specific first."""
    errors = _sdk().errors
    try:
        yield
    except errors.ImageNotFound as exc:
        raise ImageNotFound(str(exc.explanation or exc)) from exc
    except errors.APIError as exc:
        raise ContainerError(f"Docker engine error: {exc.explanation or exc}") from exc
    except errors.DockerException as exc:
        # from_env() and friends: the engine's address is wrong or nothing answers there
        raise RuntimeUnavailable(f"Docker engine unavailable: {exc}") from exc
    except OSError as exc:
        # requests' ConnectionError and ReadTimeout are OSErrors too: the engine went away mid-call
        raise RuntimeUnavailable(f"Docker engine unavailable: {exc}") from exc


def _missing(exc: BaseException) -> bool:
    """True when a translated error says the container is gone or not running (nothing left to do)."""
    cause, errors = exc.__cause__, _sdk().errors
    return isinstance(cause, errors.NotFound) or (
        isinstance(cause, errors.APIError) and cause.status_code in (304, 409)
    )


def _log_config(output_limit: int | None) -> dict[str, Any]:
    """The log config of a run's container: ``json-file`` (``docker logs`` reads it), never rotated away.

    A reclaimed run's output is replayed from this log, and its blocks must keep the indices the live ones had (SPEC
    §14: that is how a reply is not delivered twice), so the engine's defaults must not apply: another default driver
    (``journald``, ``none``) keeps nothing to replay, and the engine merges its default options into a container's
    config of the same driver, so each rotation option is set here (``max-size`` must be a positive size: one no run
    reaches, 100 × the output limit, as a stdout of only newlines takes ~70 bytes of JSON per byte). Past the limit
    the run is killed; an agent flooding its stderr past ``max-size`` would still truncate its log.
    """
    limit = OUTPUT_LIMIT if output_limit is None else output_limit
    return {"Type": "json-file", "Config": {"max-size": str(100 * limit), "max-file": "1", "compress": "false"}}


def _parse_time(value: str) -> float | None:
    """Docker's RFC 3339 timestamps (nanoseconds, 'Z') as seconds since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", value or "")
    if match is None or match.group(1).startswith("0001"):
        return None
    whole = datetime.fromisoformat(match.group(1) + "+00:00").timestamp()
    return whole + float("0." + (match.group(2) or "0"))


class DockerRuntime:
    """Run agents in Docker containers with secure defaults (SPEC §9)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        host_data_dir: Path | None = None,
        client: Any = None,
        client_factory: Callable[[], Any] | None = None,
        mount_allowlist: Sequence[AllowedMount] = (),
        read_only_rootfs: bool = True,
        output_limit: int | None = None,
        reasoning_tags: Sequence[str] = REASONING_TAGS,
        retry_attempts: int = 3,
        max_threads: int = 512,
    ) -> None:
        self.data_dir = data_dir
        # gated in a container sees the data dir at data_dir; the engine, on the host, finds it at host_data_dir
        self.host_data_dir = host_data_dir
        self.mount_allowlist = tuple(mount_allowlist)
        self.read_only_rootfs = read_only_rootfs
        self.output_limit = output_limit
        self.reasoning_tags = reasoning_tag_names(reasoning_tags)  # ValueError now, not at the first run
        self._client = client
        self._owns_client = client is None  # one made here is closed here; a caller's stays the caller's
        # the client is made on first use: docker.from_env() already talks to the engine
        self._client_factory = client_factory or (lambda: _sdk().from_env(timeout=120))
        self._retry_attempts = retry_attempts
        # our own pool, not asyncio.to_thread's default one (5 + cores threads): every live run keeps a thread
        # blocked reading its stream, and a few runs must not starve every other SDK call; threads start lazily
        self._threads = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="kanmon-docker")
        #: True once :meth:`close` released the threads and the client: the runtime is not used again.
        self.closed = False

    # ------------------------------------------------------------------------------------- the choke point
    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking SDK call on a thread, with errors translated."""
        loop = asyncio.get_running_loop()
        with translate_errors():
            return await loop.run_in_executor(self._threads, partial(fn, *args, **kwargs))

    async def _retried(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`_call` for a call that is safe to repeat, retried while the engine is unreachable."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RuntimeUnavailable),
            stop=stop_after_attempt(self._retry_attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            reraise=True,
        ):
            with attempt:
                return await self._call(fn, *args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def api(self) -> Any:
        """The low-level API client, made (and the engine contacted) on first use."""
        if self._client is None:
            self._client = await self._retried(self._client_factory)
        return self._client.api

    async def _quietly(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A call whose 'no such container' or 'not running' answer means there is nothing left to do."""
        try:
            await self._retried(fn, *args, **kwargs)
        except ContainerError as exc:
            if not _missing(exc):
                raise

    def close(self) -> None:
        """Release the runtime's threads and the connections of the client it made (not of one it was given).

        Reads still blocked on live streams finish on their own; their connections are not pooled, so closing the
        client leaves them be. Idempotent.
        """
        self.closed = True
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    # -------------------------------------------------------------------------------------------- runtime
    async def agent_host(self, network: str) -> str:
        """The address a container on ``network`` reaches this machine by: the network's IPv4 gateway.

        Raises :class:`InvalidRunSpec` for ``none`` (no network at all) and for a network without an IPv4 gateway
        (``host``), and :class:`ContainerError` when the engine has no such network.
        """
        if network in ("none", "host"):
            raise InvalidRunSpec(f"a container on network {network!r} cannot reach gated: give the group a network")
        info = await self._retried((await self.api()).inspect_network, network)
        gateways = [config.get("Gateway") for config in (info.get("IPAM") or {}).get("Config") or []]
        found = next((gateway for gateway in gateways if gateway and ":" not in gateway), None)
        if found is None:
            raise InvalidRunSpec(f"Docker network {network!r} has no IPv4 gateway for its containers to reach gated by")
        return str(found)

    async def available(self) -> bool:
        """True when the Docker engine answers a ping."""
        try:
            api = await self.api()
            return bool(await self._call(api.ping))
        except ContainerError as exc:
            logger.debug("Docker engine not available: %s", exc)
            return False

    async def start(self, spec: RunSpec) -> DockerRunHandle:
        """Create, attach and start the run's container and send it its input."""
        if spec.image is None:
            raise InvalidRunSpec(f"run {spec.run_id}: the Docker runtime needs an image")
        api = await self.api()
        group_dir, identity, mounts = await self._call(self._check_mounts, spec)
        name = f"kanmon-{spec.instance}-{folder_slug(spec.folder)}-{spec.run_id}"
        try:
            container = await self._call(
                api.create_container,
                spec.image,
                command=list(spec.command) or None,
                name=name,
                labels=spec.run_labels(),
                environment={"HOME": AGENT_HOME, **spec.env},
                user=spec.user,
                working_dir=AGENT_HOME,
                stdin_open=True,  # with detach=False the SDK also sets StdinOnce: EOF on our side closes its stdin
                host_config=self._host_config(api, spec, group_dir, mounts),
            )
        except ContainerError as exc:
            raise missing_network(spec, exc) or exc  # noqa: B904 - exc itself, or one line naming the network
        cid: str = container["Id"]
        sock = raw = None
        try:
            sock = await self._call(api.attach_socket, cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            raw = getattr(sock, "_sock", sock)
            raw.settimeout(None)  # agents may be silent for long stretches; the timers are ours, not the socket's
            started_at = time.time()
            await self._call(api.start, cid)
            await self._check_home(api, cid, group_dir, identity)
        except BaseException as exc:
            if raw is not None:
                close_attach_stream(sock, raw)
            await self._quietly(api.remove_container, cid, force=True)
            raise missing_network(spec, exc) or exc  # noqa: B904 - exc itself, or one line naming the network
        logger.info("started: container=%s image=%s", name, spec.image)  # run_id: bound by the gateway
        handle = DockerRunHandle(self, cid, name, spec.run_labels(), started_at, stream=(sock, raw))
        if spec.stdin is not None:
            handle.feed(spec.stdin)
        return handle

    def _check_mounts(self, spec: RunSpec) -> tuple[Path, Identity, list[BoundMount]]:
        # the agent user must own its group folder whoever made it (see give_to_agent); a named user cannot be checked
        group_dir = prepare_group_dir(self.data_dir, spec.group_dir, agent_owner(spec.user))
        return group_dir, directory_identity(group_dir), resolve_mounts(spec.mounts, self.mount_allowlist)

    async def _check_home(self, api: Any, cid: str, group_dir: Path, identity: Identity) -> None:
        """Raise :class:`UnsafeMount` unless the engine mounted at ``/home/agent`` the folder that was checked.

        A nested group's folder is an entry of its parent's, whose agent may swap it for a symlink between the check
        and the engine's mount (SPEC §9: symlinks that leave the folder are refused). Compared before the agent gets
        its input, through ``/proc/PID/root``; where gated cannot see the container's processes (gated in a container
        of its own) there is nothing to compare and the check before the start is all there is.
        """
        pid = (await self._call(api.inspect_container, cid)).get("State", {}).get("Pid") or 0
        mounted = await self._call(mounted_identity, int(pid), cid, AGENT_HOME) if pid else None
        if mounted is not None and mounted != identity:
            raise UnsafeMount(
                str(group_dir), "the engine mounted another folder than the one checked (replaced meanwhile)"
            )

    def host_path(self, path: Path) -> Path:
        """Where the engine finds ``path``, a checked path as gated sees it.

        Bind-mount sources are resolved by the engine on its host, not in gated's file system. When gated runs in
        a container with the data dir mounted from the host, a path under ``data_dir`` is the same path under
        ``host_data_dir``; any other path is passed unchanged (it must then be mounted at the same path in gated).
        """
        if self.host_data_dir is None:
            return path
        root = self.data_dir.resolve()
        if path != root and not path.is_relative_to(root):
            return path
        return self.host_data_dir / path.relative_to(root)

    def _host_config(self, api: Any, spec: RunSpec, group_dir: Path, mounts: list[BoundMount]) -> Any:
        # Mount objects, one per target: binds (a dict keyed by host path, or "host:target:mode" strings) lost a
        # second mount of one source and split a host path with ':' in it
        home = BoundMount(group_dir, AGENT_HOME, read_only=False)
        mounted = [
            _sdk().types.Mount(m.target, str(self.host_path(m.source)), type="bind", read_only=m.read_only)
            for m in (home, *mounts)
        ]
        return api.create_host_config(
            mounts=mounted,
            log_config=_log_config(self.output_limit),
            network_mode=spec.network,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=spec.limits.pids,
            mem_limit=spec.limits.memory_bytes,
            memswap_limit=spec.limits.memory_bytes,  # no swap on top of the memory limit
            nano_cpus=int(spec.limits.cpus * 1e9),
            read_only=self.read_only_rootfs,
            # a tiny init as PID 1: the agent gets SIGTERM's default action (PID 1 ignores it) and zombies are reaped
            init=True,
            tmpfs=_TMPFS if self.read_only_rootfs else None,
        )

    async def list_runs(self, instance: str) -> list[RunInfo]:
        """This instance's containers (by label, running or not); other instances' are never returned."""
        api = await self.api()
        found = await self._retried(api.containers, all=True, filters={"label": [f"{LABEL_INSTANCE}={instance}"]})
        runs = []
        for item in found:
            labels = item.get("Labels") or {}
            if labels.get(LABEL_INSTANCE) != instance:  # belt and braces: never touch another instance's runs
                continue
            status = _EXIT_STATUS.search(item.get("Status") or "")
            runs.append(
                RunInfo(
                    run_id=labels.get(LABEL_RUN, ""),
                    instance=instance,
                    folder=labels.get("kanmon.folder", ""),
                    name=(item.get("Names") or ["/?"])[0].lstrip("/"),
                    running=item.get("State") == "running",
                    exit_code=int(status.group(1)) if status else None,
                    started_at=float(item["Created"]) if item.get("Created") else None,
                    labels=labels,
                )
            )
        return runs

    async def attach(self, instance: str, run_id: str) -> DockerRunHandle:
        """A handle on this instance's container of ``run_id``, replaying its stdout from the start."""
        api = await self.api()
        labels = [f"{LABEL_INSTANCE}={instance}", f"{LABEL_RUN}={run_id}"]
        found = await self._retried(api.containers, all=True, filters={"label": labels})
        if not found:
            raise RunNotFound(instance, run_id)
        cid = found[0]["Id"]
        info = await self._retried(api.inspect_container, cid)
        state = info["State"]
        started_at = _parse_time(state.get("StartedAt", "")) or time.time()
        never_started = state.get("Status") == "created"
        handle = DockerRunHandle(self, cid, info["Name"].lstrip("/"), info["Config"]["Labels"], started_at)
        if never_started:
            handle.lost = True  # the daemon died between create and start: nothing ran, nothing to replay
        return handle
