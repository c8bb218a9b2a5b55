"""The HTTP surface's common ground: health, readiness, the body limit, and request metrics by route template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import APIRouter

from kanmon.gateway import Gateway, GatewayConfig, RunDefaults
from kanmon.web import WebConfig, create_app
from tests.gateway_harness import process_group, running_gateway


async def test_readyz_says_starting_until_the_first_tick(tmp_path: Path) -> None:
    """Between "gated running" and the loop's first tick, /readyz says gated is starting, not that its loop stalled."""
    async with running_gateway(tmp_path / "data", [process_group("corp")]) as h:
        config = GatewayConfig(run=RunDefaults(instance="t", data_dir=tmp_path, runtime="process"))
        starting = Gateway(h.store, h.gateway.runtimes, config)  # built, not serving yet: no tick
        try:
            assert await starting.readiness() == ["starting: the loop has not completed its first tick yet"]
        finally:
            starting.db.close()


async def test_health_ready_limit_and_request_metrics(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.2) as h:
        app = create_app(h.gateway, WebConfig(max_body_bytes=64))
        echo = APIRouter()

        @echo.post("/echo/{name}")
        async def echo_body(name: str, body: dict[str, str]) -> dict[str, str]:
            return body

        app.include_router(echo)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kanmon") as client:
            assert (await client.get("/healthz")).json() == {"ok": True}
            await h.wait_for(lambda: h.gateway.loop.ticks > 0, "a first tick")
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"ready": True, "reasons": []})

            small = await client.post("/echo/a", json={"k": "v"})
            assert small.status_code == 200
            big = await client.post("/echo/b", content=b'{"k": "' + b"x" * 100 + b'"}')
            assert big.status_code == 413 and "larger than 64 bytes" in big.json()["detail"]

            async def pieces() -> AsyncIterator[bytes]:
                for piece in (b'{"k": "', b"x" * 100, b'"}'):
                    yield piece

            chunked = await client.post("/echo/c", content=pieces())
            assert chunked.status_code == 413  # no Content-Length: counted as it streams

            text = (await client.get("/metrics")).text
        assert 'kanmon_http_requests_total{route="/echo/{name}",status="200"} 1.0' in text
        assert 'kanmon_http_requests_total{route="/echo/{name}",status="413"}' in text
        assert 'kanmon_http_requests_total{route="/readyz",status="200"} 1.0' in text
