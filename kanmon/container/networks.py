"""The Docker network of a run: ``none`` (the default: no network at all), ``bridge``, or a user-defined network.

A network the engine does not have fails the run's start (the engine refuses the container, at its creation or its
start depending on its version); :func:`missing_network` turns the engine's answer into one line that names the
network and says how to create it.
"""

from __future__ import annotations

from kanmon.container.base import RunSpec
from kanmon.container.errors import ContainerError

__all__ = ["missing_network"]


def missing_network(spec: RunSpec, error: BaseException) -> ContainerError | None:
    """The error to raise instead of ``error`` when it says that ``spec``'s network does not exist, else None."""
    if not isinstance(error, ContainerError) or f"network {spec.network} not found" not in str(error):
        return None
    hint = f"create it with `docker network create {spec.network}`, or change the group's --network"
    missing = ContainerError(f"run {spec.run_id}: there is no Docker network {spec.network!r} ({hint})")
    missing.__cause__ = error.__cause__  # the engine's own answer, for whoever looks deeper
    return missing
