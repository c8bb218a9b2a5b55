"""uvicorn serving inside a process that owns its signals and its sockets: gated, the adapters, the tests.

uvicorn's ``Server.serve`` installs SIGINT/SIGTERM handlers of its own; a process that decides itself what a signal
means (gated drains its runs first) runs :class:`EmbeddedServer` instead, which takes none, and stops it by setting
``should_exit``. Its listening sockets are bound before serving (a taken port is one line, before anything else
starts) by :func:`tcp_listener`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from kanmon.errors import InvalidInput

__all__ = ["EmbeddedServer", "listen", "tcp_listener"]

BACKLOG = 2048  # uvicorn's default


def listen(address: str, *, hint: str = "") -> socket.socket:
    """A socket bound to ``address`` (``HOST:PORT``, ``[v6]:PORT``) and listening, for :class:`EmbeddedServer`: gated's
    HTTP surface (``http.listen``) and the adapters' ``/send`` servers.

    ``gated run`` binds it before it touches the store, so a port in use or an address this machine does not have is
    one line (:class:`~kanmon.errors.InvalidInput`, exit 2) and nothing is created. A client that connects before
    uvicorn's first accept waits in the backlog. ``hint`` ends that line: how this command takes another address.
    """
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        sock = tcp_listener(host, int(port), backlog=BACKLOG)
    except (OSError, OverflowError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        why = f"cannot listen on {address}: {reason[:1].lower()}{reason[1:]}"
        raise InvalidInput(f"{why} ({hint})" if hint else why) from None
    sock.set_inheritable(True)
    return sock


def tcp_listener(host: str, port: int, *, backlog: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (an IPv6 address when ``host`` has a colon) and listening, for
    ``EmbeddedServer.serve(sockets=[...])``; raises ``OSError`` (address taken or not this machine's),
    ``OverflowError`` or ``ValueError`` (a port out of range) and leaves nothing open then.

    The socket is made with ``proto=IPPROTO_TCP``: connections it accepts inherit the listener's ``proto``, and
    asyncio switches Nagle's algorithm off (``TCP_NODELAY``) only on sockets that say IPPROTO_TCP
    (``asyncio.base_events._set_nodelay``). A listener made with the default ``proto`` 0 (as
    ``uvicorn.Config.bind_socket`` does, uvicorn issue #3149) answers every request on a kept-alive connection
    about 40 ms late, waiting for the client's delayed ACK: gated took 48 ms for any request before this.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class EmbeddedServer(uvicorn.Server):
    """A :class:`uvicorn.Server` that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
