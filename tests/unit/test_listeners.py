"""Every TCP listener kanmon serves HTTP on answers without Nagle's delay.

Connections inherit their listener's ``proto``, and asyncio sets ``TCP_NODELAY`` only on sockets whose ``proto`` is
IPPROTO_TCP. A listener made with the default ``proto`` 0 (``socket.socket(family, SOCK_STREAM)``, or uvicorn's
``Config.bind_socket``, uvicorn issue #3149) left Nagle on, and every request to gated on a kept-alive connection
took 48 ms instead of 1–3 ms: the Telegram adapter stored 15 messages a second. The check here is the one asyncio
makes, on the connection it accepts, so it holds for whatever server (uvicorn or other) serves the socket.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kanmon.adapters.matrix.config import MatrixConfig
from kanmon.adapters.matrix.run import bind
from kanmon.serving import listen, tcp_listener

ROOT = Path(__file__).resolve().parents[2]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


LISTENERS: dict[str, Callable[[], socket.socket]] = {
    "serving.tcp_listener": lambda: tcp_listener("127.0.0.1", 0, backlog=8),
    "gated run, the Telegram adapter (serving.listen)": lambda: listen("127.0.0.1:0"),
    "the Matrix adapter (matrix.run.bind)": lambda: bind(MatrixConfig(homeserver="http://x", user_id="@b:x",
                                                                       listen_port=0)),
}  # fmt: skip
if has_ipv6_loopback():
    LISTENERS["serving.tcp_listener on ::1"] = lambda: tcp_listener("::1", 0, backlog=8)


async def accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of the server side of one connection accepted by an asyncio server on ``listener``."""
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    host, port = listener.getsockname()[:2]
    try:
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", sorted(LISTENERS))
async def test_connections_a_listener_accepts_send_without_waiting_for_acks(name: str) -> None:
    listener = LISTENERS[name]()
    assert listener.proto == socket.IPPROTO_TCP
    assert await accepted_nodelay(listener) != 0


async def test_a_listener_made_the_default_way_would_not_so_the_check_above_can_fail() -> None:
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, what every listener here was before
    plain.bind(("127.0.0.1", 0))
    plain.listen(8)
    assert await accepted_nodelay(plain) == 0


def test_a_taken_port_closes_the_socket_it_made_and_raises_oserror() -> None:
    holder = tcp_listener("127.0.0.1", 0, backlog=8)
    try:
        with pytest.raises(OSError):
            tcp_listener("127.0.0.1", holder.getsockname()[1], backlog=8)
    finally:
        holder.close()


def test_no_other_code_makes_a_tcp_listener() -> None:
    """The credential proxy, the adapters, gated and the tests' servers all bind through ``tcp_listener``."""
    made_here = re.compile(r"\bbind_socket\(|socket\.socket\([^)]*SOCK_STREAM(?![^)]*IPPROTO_TCP)")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for base in ("kanmon", "tests")
        for path in sorted((ROOT / base).rglob("*.py"))
        if path.name not in {"serving.py", "test_listeners.py"}
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if made_here.search(line) and "AF_UNIX" not in line
    ]
    assert offenders == []
