"""The HTTP app: health and metrics now; the adapter API and the web chat join it (SPEC §11, §12).

It holds no state of its own: everything comes from the :class:`~kanmon.gateway.Gateway` it is built around.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kanmon.gateway import Gateway

__all__ = ["create_app"]


def create_app(gateway: Gateway) -> FastAPI:
    """The FastAPI app of one gated."""
    app = FastAPI(title="kanmon", summary="Channel adapters, web chat, metrics and health of one gated.")

    @app.get("/healthz", summary="The process is alive.")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get(
        "/readyz",
        summary="Ready: the store and the runtimes in use answer, and the loop ticked in the last 3 poll intervals.",
        responses={503: {"description": "Not ready; `reasons` says why."}},
    )
    async def readyz() -> JSONResponse:
        reasons = await gateway.readiness()
        return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)

    @app.get("/metrics", summary="Prometheus metrics (text format).", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
