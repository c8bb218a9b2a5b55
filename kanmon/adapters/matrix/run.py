"""``gated adapter matrix``: the Matrix adapter as a process of its own (:func:`serve`).

Start-up, in order: bind the ``/send`` port (a port already taken is one line, exit 2, before anything else), log
in (an access token as configured, or a password login whose device and token are kept in the state file and
reused), serve HTTP, register with gated (waiting while it is down), then sync. SIGTERM or SIGINT stops it: an
unfinished sync batch is simply not confirmed, and the next start takes it again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

import httpx
import uvicorn
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    ProfileGetDisplayNameResponse,
    RoomTypingError,
    WhoamiResponse,
)

from kanmon import redaction
from kanmon.adapters.errors import AdapterError
from kanmon.adapters.matrix.adapter import Syncer, http_client, registration
from kanmon.adapters.matrix.config import ADAPTER_NAME, MatrixConfig
from kanmon.adapters.matrix.gated import GatedClient
from kanmon.adapters.matrix.inbound import Bot
from kanmon.adapters.matrix.outbound import Sender
from kanmon.adapters.matrix.server import create_app
from kanmon.adapters.matrix.state import AdapterState
from kanmon.serving import EmbeddedServer, listen
from kanmon.stopping import unless_stopped

__all__ = ["LoginFailed", "bind", "serve"]

logger = logging.getLogger(__name__)

TYPING_MS = 10_000  # how long one typing notice lasts unless renewed (gated renews every delivery.typing_interval)


class LoginFailed(AdapterError):
    """The homeserver refused the configured credentials."""


def bind(config: MatrixConfig) -> socket.socket:
    """The listening socket of ``/send``; raises :class:`~kanmon.errors.InvalidInput` when the address cannot be had."""
    host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
    sock = listen(f"{host}:{config.listen_port}")
    sock.setblocking(False)
    return sock


async def serve(config: MatrixConfig, sock: socket.socket) -> None:
    """Run the adapter until SIGTERM or SIGINT; raises :class:`LoginFailed` for refused credentials."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    state = AdapterState(config.state_dir)
    client = AsyncClient(
        config.homeserver,
        config.user_id,
        config=AsyncClientConfig(max_timeouts=2, request_timeout=config.request_timeout, store_sync_tokens=False),
    )
    http = http_client(config.request_timeout)
    try:
        if await unless_stopped(_login(client, config, state), stopping) is None:
            return
        await _serve_logged_in(config, sock, client, state, http, stopping)
    finally:
        await client.close()
        await http.aclose()
        state.close()


async def _serve_logged_in(
    config: MatrixConfig,
    sock: socket.socket,
    client: AsyncClient,
    state: AdapterState,
    http: httpx.AsyncClient,
    stopping: asyncio.Event,
) -> None:
    gated = GatedClient(config.gated_url, config.channel_secret, registration(config, ADAPTER_NAME), http)
    syncer = Syncer(client, gated, state, config)
    name = await client.get_displayname(config.user_id)
    if isinstance(name, ProfileGetDisplayNameResponse) and name.displayname:
        syncer.bot = Bot(user_id=config.user_id, display_name=name.displayname, media_url=config.url)
    sender = Sender(client, state, http, limit=config.max_message_bytes, max_file_bytes=config.max_file_bytes)

    async def media(server: str, media_id: str) -> httpx.Response:
        url = f"{config.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}"
        request = http.build_request("GET", url, headers={"Authorization": f"Bearer {client.access_token}"})
        return await http.send(request, stream=True, follow_redirects=True)

    def health() -> dict[str, Any]:
        return {"ok": True, "user_id": config.user_id, "synced": syncer.synced.is_set()}

    async def typing(room_id: str, on: bool) -> None:
        """The bot's typing notice in ``room_id``; it lapses by itself after TYPING_MS (gated renews it)."""
        try:
            answer = await client.room_typing(room_id, typing_state=on, timeout=TYPING_MS)
        except (OSError, TimeoutError) as exc:
            logger.debug("typing in %s: homeserver unreachable: %s", room_id, type(exc).__name__)
            return
        if isinstance(answer, RoomTypingError):
            logger.debug("typing in %s refused: %s", room_id, answer.message)

    app = create_app(sender.send, config.channel_secret, media=media, health=health, typing=typing)
    server = EmbeddedServer(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    http_task = asyncio.create_task(server.serve(sockets=[sock]), name="matrix-http")
    try:
        if await unless_stopped(gated.register(), stopping):
            logger.info("matrix adapter running: %s on %s, /send at %s", config.user_id, config.homeserver, config.url)
            await unless_stopped(syncer.run(stopping), stopping)
    finally:
        server.should_exit = True
        await http_task
        logger.info("matrix adapter stopped")


async def _login(client: AsyncClient, config: MatrixConfig, state: AdapterState) -> None:
    """Log ``client`` in: the configured token, else the device a password login left in ``state``, else a new one."""
    token = config.access_token
    device = ""
    if not token:
        saved_for = await asyncio.to_thread(state.get, "login_user")
        if saved_for == config.user_id:
            saved_token: str | None = await asyncio.to_thread(state.get, "access_token")
            saved_device: str | None = await asyncio.to_thread(state.get, "device_id")
            token, device = saved_token or "", saved_device or ""
    if token:
        redaction.remember(token)
        client.restore_login(config.user_id, device, token)
        who = await _retry(client.whoami)
        if isinstance(who, WhoamiResponse):
            if who.user_id != config.user_id:
                raise LoginFailed(f"the access token is {who.user_id}'s, not matrix.user_id {config.user_id}'s")
            client.device_id = who.device_id or device
            return
        if config.access_token:
            raise LoginFailed(f"the homeserver refused matrix.access_token: {who}")
    answer = await _retry(client.login, config.password, "kanmon")
    if not isinstance(answer, LoginResponse):
        raise LoginFailed(f"the homeserver refused the password login of {config.user_id}: {answer}")
    redaction.remember(answer.access_token)
    for key, value in (("access_token", answer.access_token), ("device_id", answer.device_id)):
        await asyncio.to_thread(state.put, key, value)
    await asyncio.to_thread(state.put, "login_user", config.user_id)
    logger.info("logged in to %s as %s (device %s)", config.homeserver, config.user_id, answer.device_id)


async def _retry(call: Any, *args: Any) -> Any:
    """``call(*args)`` again and again while the homeserver cannot be reached (a refusal is an answer)."""
    pause = 0.5
    while True:
        try:
            return await call(*args)
        except (OSError, TimeoutError) as exc:
            logger.warning("homeserver not reachable, again in %.0fs: %s", pause, type(exc).__name__)
            await asyncio.sleep(pause)
            pause = min(30.0, pause * 2)
