"""A Telegram world in one event loop: the fake Bot API (its own thread), a served gateway with its HTTP API, and the
Telegram adapter (:class:`~kanmon.adapters.telegram.adapter.TelegramAdapter`) talking to both over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kanmon.adapters.telegram.adapter import TelegramAdapter, TelegramConfig
from kanmon.gateway.adapters import AdapterDeliveryConfig
from kanmon.serving import tcp_listener
from kanmon.web import WebConfig, create_app
from tests.gateway_harness import Harness, process_group, running_gateway
from tests.http_serving import serving
from tests.telegram_fake import FakeBotApi

SECRET = "channel-secret-for-telegram-tests"


def bound() -> socket.socket:
    return tcp_listener("127.0.0.1", 0, backlog=64)


@dataclass
class TelegramWorld:
    fake: FakeBotApi
    h: Harness
    gated_url: str
    adapter_url: str
    state_dir: Path
    adapter: TelegramAdapter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    async def send(self, body: dict[str, Any], key: str | None = None, secret: str = SECRET) -> httpx.Response:
        """POST the adapter's /send as gated would."""
        headers = {"Authorization": f"Bearer {secret}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(f"{self.adapter_url}/send", json=body, headers=headers)

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := await asyncio.to_thread(condition)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
            await asyncio.sleep(0.05)
        return result


@contextlib.asynccontextmanager
async def telegram_world(
    tmp_path: Path,
    fake: FakeBotApi,
    *,
    routes: bool = True,
    typing_limit: float = 0.0,
    agent_env: dict[str, Any] | None = None,
    typing_interval: float = 4.0,
    **adapter: Any,
) -> AsyncIterator[TelegramWorld]:
    """gated (echo agent ``corp`` with ``agent_env``, routed ``platform=telegram`` when ``routes``) and a running
    adapter; gated sends ``/typing`` every ``typing_interval`` seconds while a run works."""
    async with contextlib.AsyncExitStack() as stack:
        h = await stack.enter_async_context(
            running_gateway(tmp_path / "data", [process_group("corp", agent_env)], poll_interval=0.2)
        )
        h.gateway.configure_adapters(
            AdapterDeliveryConfig(
                channel_secret=SECRET, retry_base=0.05, deadline=600.0, quick_wait=0.01, typing_interval=typing_interval
            )
        )
        if routes and not h.store.list_routes():
            h.store.add_route(seq=0, match="platform=telegram", target="corp")
        gated_url = await stack.enter_async_context(serving(create_app(h.gateway, WebConfig(channel_secret=SECRET))))
        h.gateway.media_links.base_url = gated_url  # what gated run sets to its own address
        listener = bound()
        adapter_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        world = TelegramWorld(fake, h, gated_url, adapter_url, tmp_path / "adapter-state")
        config = TelegramConfig(
            token=fake.token,
            channel_secret=SECRET,
            gated_url=gated_url,
            url=adapter_url,
            state_dir=world.state_dir,
            api_url=fake.url,
            poll_timeout=1.0,
            typing_limit=typing_limit,
            **adapter,
        )
        world.adapter = TelegramAdapter(config, listener)
        task = asyncio.create_task(world.adapter.run(world.stopping))
        try:
            await world.until(lambda: task.done() or fake.calls_of("getUpdates"), "the adapter to poll")
            if task.done():
                task.result()
            yield world
        finally:
            world.stopping.set()
            await asyncio.wait_for(task, 30)
            listener.close()
            await world.http.aclose()
