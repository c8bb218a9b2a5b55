"""Errors of the agent runtimes.

KanmonError
└── ContainerError
    ├── RuntimeUnavailable   the engine (Docker) cannot be reached; the caller may retry later
    ├── RunNotFound          no run with that id belongs to this instance
    ├── ImageNotFound        the image is not present locally (kanmon never pulls)
    ├── InvalidRunSpec       a RunSpec that cannot be started as given (also an InvalidInput)
    └── UnsafeMount          a mount would expose a path outside what it is allowed to (also an InvalidInput)
"""

from __future__ import annotations

from kanmon.errors import InvalidInput, KanmonError

__all__ = [
    "ContainerError",
    "ImageNotFound",
    "InvalidRunSpec",
    "RunNotFound",
    "RuntimeUnavailable",
    "UnsafeMount",
]


class ContainerError(KanmonError):
    """Raised when an agent runtime fails to start, watch or stop a run."""


class RuntimeUnavailable(ContainerError):
    """Raised when the runtime's engine cannot be reached; transient, the caller may retry later."""


class RunNotFound(ContainerError):
    """Raised when no run with the given id exists for this instance."""

    def __init__(self, instance: str, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} of instance {instance!r}")
        self.instance = instance
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"RunNotFound(instance={self.instance!r}, run_id={self.run_id!r})"


class ImageNotFound(ContainerError):
    """Raised when the agent image is missing locally; kanmon never pulls images."""

    def __init__(self, image: str) -> None:
        super().__init__(f"image {image!r} is not present on the Docker engine (kanmon never pulls; build it first)")
        self.image = image


class InvalidRunSpec(ContainerError, InvalidInput):
    """Raised when a RunSpec is inconsistent (bad ids, timeouts, missing image or command)."""


class UnsafeMount(ContainerError, InvalidInput):
    """Raised when a mount is a symlink leaving its allowed root, or is not on the allowlist."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"refusing to mount {path!r}: {why}")
        self.path = path
        self.why = why

    def __repr__(self) -> str:
        return f"UnsafeMount(path={self.path!r}, why={self.why!r})"
