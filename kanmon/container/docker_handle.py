"""DockerRunHandle: one container of :class:`~kanmon.container.docker.DockerRuntime`, read and fed through it.

Every blocking call goes through the runtime's thread facade (``_call``, ``_retried``, ``_quietly``); nothing here
imports the Docker SDK at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kanmon.container.base import LABEL_INSTANCE, LABEL_RUN, timers_from_labels
from kanmon.container.handle import STDOUT, Chunk, RunHandle

if TYPE_CHECKING:
    from kanmon.container.docker import DockerRuntime

__all__ = ["DockerRunHandle", "close_attach_stream"]

logger = logging.getLogger("kanmon.container.docker")  # the runtime's logger: one name for a run's Docker lines


def docker_sdk() -> Any:
    """The ``docker`` package, imported on first use (as :mod:`kanmon.container.docker` does)."""
    from kanmon.container.docker import _sdk

    return _sdk()


class DockerRunHandle(RunHandle):
    """One container: read from its attach stream (a run we started) or from its logs (a reclaimed run)."""

    def __init__(
        self,
        runtime: DockerRuntime,
        container_id: str,
        name: str,
        labels: dict[str, str],
        started_at: float,
        *,
        stream: tuple[Any, Any] | None = None,
    ) -> None:
        idle, timeout, grace = timers_from_labels(labels)
        super().__init__(
            run_id=labels.get(LABEL_RUN, container_id[:12]),
            instance=labels.get(LABEL_INSTANCE, ""),
            name=name,
            idle_timeout=idle,
            timeout=timeout,
            stop_grace=grace,
            started_at=started_at,
            output_limit=runtime.output_limit,
            reasoning_tags=runtime.reasoning_tags,
        )
        self.container_id = container_id
        self.lost = False
        self._runtime = runtime
        self._stream = stream
        self._frames: Iterator[tuple[int, bytes]] | None = None
        self._from_logs = stream is None
        self._feeder: asyncio.Task[None] | None = None

    def feed(self, payload: bytes) -> None:
        """Send the input document on stdin, then EOF, without blocking the reader (a big input fills the pipe)."""
        if self._stream is not None:
            self._feeder = asyncio.create_task(self._runtime._call(self._send, self._stream[1], payload))

    @staticmethod
    def _send(raw: socket.socket, payload: bytes) -> None:
        # an agent that exits without reading its input closes its end: not our error
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)

    async def _read(self) -> Chunk | None:
        if self.lost:
            return None
        if self._frames is None:
            self._frames = await self._open_frames()
        chunk = await self._runtime._call(next, self._frames, None)
        return None if chunk is None else (int(chunk[0]), bytes(chunk[1]))

    async def _open_frames(self) -> Iterator[tuple[int, bytes]]:
        if self._stream is not None:
            frames: Iterator[tuple[int, bytes]] = docker_sdk().utils.socket.frames_iter(self._stream[0], tty=False)
            return frames
        api = await self._runtime.api()
        # stdout only, from the very start, following until the container ends; stderr is fetched at the end
        logs = await self._runtime._retried(api.logs, self.container_id, stdout=True, stderr=False, stream=True)
        return ((STDOUT, data) for data in logs)

    async def _exit_code(self) -> int | None:
        if self.lost:
            return None
        api = await self._runtime.api()
        if self._feeder is not None:
            await self._feeder
        result = await self._runtime._retried(api.wait, self.container_id)
        if self._from_logs:
            stderr = await self._runtime._retried(api.logs, self.container_id, stdout=False, stderr=True)
            self._stderr.append(stderr)
        return int(result["StatusCode"])

    async def _terminate(self, grace: float) -> None:
        api = await self._runtime.api()
        await self._runtime._quietly(api.stop, self.container_id, timeout=math.ceil(grace))

    async def _kill(self) -> None:
        api = await self._runtime.api()
        await self._runtime._quietly(api.kill, self.container_id)

    async def _release(self) -> None:
        api = await self._runtime.api()
        self._close_stream()
        await self._runtime._quietly(api.remove_container, self.container_id, force=True)
        logger.debug("container %s removed", self.name)

    async def _abandon(self) -> None:
        self._close_stream()

    def _close_stream(self) -> None:
        if self._stream is not None:
            close_attach_stream(*self._stream)


def close_attach_stream(sock: Any, raw: Any) -> None:
    """Close a container's attach stream (``sock``, the SDK's wrapper, and ``raw``, its socket) at once.

    shutdown, not just close: it wakes a thread blocked reading the socket; and both, since closing the SocketIO
    wrapper alone leaves the socket open, which docker-py holds in a reference cycle until a garbage collection.
    """
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
    with contextlib.suppress(OSError):
        raw.close()
