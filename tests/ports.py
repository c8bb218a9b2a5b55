"""TCP ports for the servers tests start as child processes, taken from outside the kernel's ephemeral range.

The usual trick (bind port 0, read the port, let it go, hand it to the child) takes the port from the ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 on Debian). Every outgoing connection on the machine takes
its local port from that same range: another test's HTTP client, a PostgreSQL or Synapse client. Between the choice and
the child's bind, or while a killed child is down before its restart on the same port, one of them can take it, and
the child exits with ``cannot listen on 127.0.0.1:60949: address already in use`` (a CI run did).

:func:`free_port` hands out ports below that range instead, where the kernel never picks one on its own. Each
pytest-xdist worker (``PYTEST_XDIST_WORKER=gwN``) has its own block, so two workers never hand out the same port, and a
worker walks its block in turn, so a port it handed out is not handed out again until the block has gone round.
A port that cannot be bound right now (some other program holds it) is skipped.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

BLOCK = 1_000
"""Ports per pytest-xdist worker."""
WORKERS = 8
"""Blocks below the ephemeral range; a worker numbered past them shares a block with a lower one."""
_FLOOR = 10_000


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    """The kernel's ephemeral port range, (low, high) inclusive; Linux's default when ``path`` cannot be read."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def worker_block(worker: str | None = None) -> range:
    """The ports of ``worker`` (``gw0``, ``gw1``, …; the environment's when None, block 0 without xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    number = int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0
    base = max(_FLOOR, ephemeral_range()[0] - WORKERS * BLOCK)
    start = base + (number % WORKERS) * BLOCK
    return range(start, start + BLOCK)


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing holds ``port`` on ``host`` now (bound without SO_REUSEADDR: a port in TIME_WAIT counts)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


_turns = itertools.cycle(worker_block())


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds now and that this worker has not handed out lately.

    Raises RuntimeError when every port of the worker's block is held.
    """
    for _ in range(BLOCK):
        port = next(_turns)
        if bindable(port):
            return port
    raise RuntimeError(f"no free port in {worker_block()}")
