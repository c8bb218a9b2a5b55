"""Health and metrics (SPEC §12): /healthz (alive), /readyz (able to work, or why not), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kanmon.gateway import Gateway
from kanmon.web.deps import get_gateway

__all__ = ["router"]

router = APIRouter(tags=["health"])

GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@router.get("/healthz", summary="The process is alive.")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get(
    "/readyz",
    summary="Ready: the store and the runtimes in use answer, and the loop ticked in the last 3 poll intervals.",
    responses={503: {"description": "Not ready; `reasons` says why."}},
)
async def readyz(gateway: GatewayDep) -> JSONResponse:
    reasons = await gateway.readiness()
    return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)


@router.get("/metrics", summary="Prometheus metrics (text format).", response_class=Response)
async def metrics(gateway: GatewayDep) -> Response:
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)
