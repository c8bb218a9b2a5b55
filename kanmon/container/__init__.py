"""Agent runtimes (SPEC §9): plain values in, an async stream of events out.

This package knows nothing of SQL, HTTP or the message loop. Start a run from a :class:`RunSpec` with a
:class:`Runtime` (:class:`DockerRuntime`, :class:`ProcessRuntime`; :class:`InProcessRuntime` for benchmarks and
fast tests), iterate the :class:`RunHandle` for :class:`Output` and :class:`Heartbeat` events and a final
:class:`Exited`; ``list_runs`` and ``attach`` find and replay this instance's runs after a restart.
"""

from __future__ import annotations

from kanmon.container.base import AllowedMount, Limits, Mount, RunInfo, RunSpec, Runtime
from kanmon.container.errors import (
    ContainerError,
    ImageNotFound,
    InvalidRunSpec,
    RunNotFound,
    RuntimeUnavailable,
    UnsafeMount,
)
from kanmon.container.events import Exited, ExitReason, Heartbeat, Output, RunEvent
from kanmon.container.handle import RunHandle
from kanmon.container.inprocess import AgentCall, AgentFn, InProcessRuntime
from kanmon.container.payload import AgentInput, PromptAttachment, PromptMessage, render_prompt
from kanmon.container.process import ProcessRuntime
from kanmon.container.protocol import OutputParser, clean_result

__all__ = [
    "AgentCall",
    "AgentFn",
    "AgentInput",
    "AllowedMount",
    "ContainerError",
    "DockerRuntime",
    "ExitReason",
    "Exited",
    "Heartbeat",
    "ImageNotFound",
    "InProcessRuntime",
    "InvalidRunSpec",
    "Limits",
    "Mount",
    "Output",
    "OutputParser",
    "ProcessRuntime",
    "PromptAttachment",
    "PromptMessage",
    "RunEvent",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "RunSpec",
    "Runtime",
    "RuntimeUnavailable",
    "UnsafeMount",
    "clean_result",
    "render_prompt",
]


def __getattr__(name: str) -> object:
    # the Docker SDK is imported only by whoever uses the Docker runtime
    if name == "DockerRuntime":
        from kanmon.container.docker import DockerRuntime

        return DockerRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
